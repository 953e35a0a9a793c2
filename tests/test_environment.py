"""The environment `make install` builds: one OpenCV build (several packages ship their own cv2), torch pinned."""
from importlib import metadata


def test_exactly_one_opencv_distribution():
    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    opencv = sorted(n for n in names if n.startswith("opencv"))
    assert opencv == ["opencv-contrib-python-headless"], opencv


def test_torch_pair_is_pinned():
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == "2.14.1"
    assert torchvision.__version__.split("+")[0] == "0.29.1"
