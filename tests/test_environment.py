"""The environment `make install` builds: one OpenCV build (several packages ship their own cv2), one faiss and one
onnxruntime build (CPU or GPU), torch pinned to the pair vLLM 0.33 requires."""

from importlib import metadata


def test_exactly_one_opencv_distribution():
    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    opencv = sorted(n for n in names if n.startswith("opencv"))
    assert opencv == ["opencv-contrib-python-headless"], opencv


def test_torch_pair_is_pinned():
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == "2.14.0"
    assert torchvision.__version__.split("+")[0] == "0.29.0"


def test_one_faiss_and_one_onnxruntime_build():
    """faiss-cpu / faiss-gpu-cu12 and onnxruntime / onnxruntime-gpu write the same package: one of each."""
    names = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    faiss = sorted(n for n in names if n.startswith("faiss"))
    ort = sorted(n for n in names if n.startswith("onnxruntime"))
    assert len(faiss) == 1 and len(ort) == 1, (faiss, ort)
