"""What a fresh worker process pays before its first photo, and what a partition computes more than once, kept
small: no torch import to learn there is no GPU, none to embed with MobileNetV2 on the CPU (its ONNX export runs on
ONNX Runtime, equal to torch's), no scikit-learn import to find the shipped photos, one JPEG per shared photo per
partition, one set of SSIM statistics per photo per batch, and OpenCV held to the task's CPUs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from datagen import devices
from datagen.schema import ROLE_CONDITION, ROLE_PHOTO, TASKS, Frame, Provenance, Sample, Turn
from datagen.shards import codec
from datagen.shards.reader import iter_samples, read_index
from datagen.shards.writer import PartitionWriter

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, **env: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip()


@pytest.mark.skipif(any(os.path.exists(p) for p in devices._GPU_NODES), reason="this machine has a GPU driver")
def test_no_gpu_is_known_without_importing_torch():
    out = python(
        "import sys; from datagen.devices import resolve_device; print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    assert out == "cpu False"


def test_the_shipped_photos_are_found_without_importing_their_packages():
    out = python(
        "import sys; from datagen.ingest.listing import builtin_photos; n = len(builtin_photos()); "
        "print(n, 'sklearn' in sys.modules, 'skimage' in sys.modules)"
    )
    assert out == "17 False False"


def test_mobilenet_on_onnx_runtime_equals_torch_and_needs_no_torch(tmp_path):
    from operators.features.mobilenet import MobileNetFeatures, cached_onnx, load_mobilenet_v2

    os.environ["DATAGEN_CACHE_DIR"] = str(tmp_path)
    try:
        path = cached_onnx()  # exported here, checked against torch, cached under the weights' sha256
        assert path.is_file() and str(tmp_path) in str(path) and cached_onnx() == path
        cat = skimage.data.chelsea()
        import torch

        op = MobileNetFeatures()
        onnx_map = op.feature_map(cat)
        with torch.inference_mode():
            torch_map = load_mobilenet_v2().features(op._tensor(cat))[0].numpy()
        assert onnx_map.shape == torch_map.shape and np.abs(onnx_map - torch_map).max() < 1e-3
    finally:
        del os.environ["DATAGEN_CACHE_DIR"]
    # a worker with the export cached embeds without torch
    out = python(
        "import sys, skimage.data; from operators.features.mobilenet import MobileNetFeatures; "
        "e = MobileNetFeatures().compute([skimage.data.chelsea()])[0]; "
        "print(len(e.embedding), 'torch' in sys.modules)",
        DATAGEN_CACHE_DIR=str(tmp_path),
    )
    assert out == "1280 False"


def sample(key: str, photo: np.ndarray, cond: np.ndarray) -> Sample:
    task = "Image Colorization"
    turn = Turn(
        task=task,
        direction=TASKS[task].direction,
        inputs=[Frame(cond, role=ROLE_CONDITION)],
        target=Frame(photo, role=ROLE_PHOTO),
        instruction="Colorize {image}.",
    )
    return Sample(
        turns=[turn],
        provenance=Provenance(sources=["p"], source_ids=[key], operator="test", operator_version="1"),
        key=key,
    )


def test_a_photo_shared_by_samples_is_encoded_once(tmp_path, monkeypatch):
    photo = skimage.data.astronaut()[::4, ::4].copy()
    calls = []
    real = codec.encode_image
    monkeypatch.setattr(codec, "encode_image", lambda im, *a, **k: calls.append(im.shape) or real(im, *a, **k))
    w = PartitionWriter(tmp_path, "img-00000", samples_per_shard=10)
    for i in range(3):
        w.add(sample(f"k{i}", photo, np.full_like(photo, 40 * i)))  # three maps, one photo
    w.close()
    assert len(calls) == 4  # the photo once, each map once
    got = {s.key: s for s in iter_samples(tmp_path)}
    assert len(got) == 3 and read_index(tmp_path).num_rows == 3
    targets = [got[f"k{i}"].turns[0].target.image for i in range(3)]
    assert all(np.array_equal(targets[0], t) for t in targets[1:])


def test_pixel_scores_share_a_photos_statistics_without_changing_them():
    from operators.scoring.pixel import _StatsMemo, pixel_scores

    photo = skimage.data.coffee()
    edits = [np.clip(photo.astype(int) + d, 0, 255).astype(np.uint8) for d in (-30, 5, 60)]
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[100:200, 150:300] = 255
    memo = _StatsMemo(1.5)
    shared = [pixel_scores(photo, e, mask, memo=memo) for e in edits] + [
        pixel_scores(e, photo, None, memo=memo) for e in edits
    ]
    alone = [pixel_scores(photo, e, mask) for e in edits] + [pixel_scores(e, photo, None) for e in edits]
    assert shared == alone
    assert len(memo._stats) == 4  # the photo and the three edits, each once
    assert len(memo._pairs) == 3  # photo -> edit and edit -> photo: one SSIM map and difference per pair


def test_opencv_follows_the_tasks_cpus(ray_local):
    from datagen.runtime import _prepare_worker

    @ray_local.remote(num_cpus=1)
    def threads_in_a_task() -> int:
        _prepare_worker()
        import cv2

        return cv2.getNumThreads()

    assert ray_local.get(threads_in_a_task.remote()) == 1
