"""Shared fixtures: tiny real images, tiny shard folders, one local Ray per test session, and no network."""

from __future__ import annotations

import os

# No hub access at test time: every model is made by the test, saved, and loaded from a local path.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from datagen.ingest.listing import builtin_photos  # noqa: E402
from datagen.testing import load_photo  # noqa: E402,F401  (re-exported for tests)


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """Real photographs shipped in scikit-image / scikit-learn (see datagen/ingest/listing.py)."""
    return [Path(p) for _, p in builtin_photos()]


@pytest.fixture
def photo() -> np.ndarray:
    return load_photo()


@pytest.fixture
def photo_dir(tmp_path: Path, photo_paths: list[Path]) -> Path:
    """A folder of a few real photos, downscaled (fast to process)."""
    d = tmp_path / "photos"
    d.mkdir()
    for p in photo_paths[:6]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        s = 160 / max(img.shape[:2])
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / (p.stem + ".png")), img)
    return d


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for the whole session (starting Ray takes seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def object_scene(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A noisy, shaded background holding a textured red disc and a striped blue square; their masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:160, 0:160]
    image = np.stack([90 + xx * 0.4, 140 - yy * 0.3, 100 + 0 * xx], -1)
    disc = (yy - 55) ** 2 + (xx - 50) ** 2 < 30**2
    square = (yy > 80) & (yy < 140) & (xx > 85) & (xx < 145)
    image[disc] = (200, 40, 40)
    image[square] = (40, 60, 190)
    image[square & ((xx // 6) % 2 == 0)] += 25  # stripes inside the square: texture, not a new object
    image = image + rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), {"disc": disc, "square": square}
