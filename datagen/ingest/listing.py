"""Turn the recipe's input into a sorted list of entries and cut it into partitions (the units of work).
Inputs: image folders (recursive), webdataset tars (img2dataset output), parquet or CSV lists of paths,
fsspec URIs, and `builtin:photos` (real photos shipped inside scikit-image and scikit-learn)."""

from __future__ import annotations

import logging
import os
import posixpath
import tarfile
from typing import Any

import fsspec
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from braceexpand import braceexpand

from datagen.config import ConfigError, InputConfig
from datagen.ingest.decode import UNSAFE_MEMBER
from datagen.schema import FORBIDDEN_EXTENSIONS

log = logging.getLogger(__name__)

# Real photographs shipped inside packages the project installs (licences in datagen/assets/PHOTOS.md).
BUILTIN_PHOTOS = {
    "skimage": [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "rocket.jpg",
        "camera.png",
        "hubble_deep_field.jpg",
        "retina.jpg",
        "ihc.png",
        "moon.png",
        "coins.png",
        "brick.png",
        "grass.png",
        "gravel.png",
    ],
    "sklearn": ["china.jpg", "flower.jpg"],
}


# Short alt-text captions of the shipped photos, as a web collection would carry them.
BUILTIN_CAPTIONS = {
    "skimage/astronaut.png": "a smiling astronaut in a spacesuit in front of a flag",
    "skimage/chelsea.png": "a tabby cat looking to the side",
    "skimage/coffee.png": "a cup of coffee on a saucer seen from above",
    "skimage/motorcycle_left.png": "a red motorcycle parked in a cluttered room",
    "skimage/motorcycle_right.png": "a red motorcycle parked in a cluttered room",
    "skimage/rocket.jpg": "a rocket on its launch pad under a blue sky",
    "skimage/camera.png": "a photographer with a camera on a tripod",
    "skimage/hubble_deep_field.jpg": "distant galaxies in deep space",
    "skimage/retina.jpg": "the retina of a human eye with its blood vessels",
    "skimage/ihc.png": "stained tissue under a microscope",
    "skimage/moon.png": "the cratered surface of the moon",
    "skimage/coins.png": "old coins on a dark background",
    "skimage/brick.png": "a brick wall",
    "skimage/grass.png": "a patch of grass",
    "skimage/gravel.png": "gravel stones on the ground",
    "sklearn/china.jpg": "a traditional Chinese temple behind trees",
    "sklearn/flower.jpg": "a close-up of a blooming flower",
}


def builtin_photos() -> list[tuple[str, str]]:
    """(stable relative name, local path) of each shipped photo."""
    import importlib.util

    def folder(package: str, *sub: str) -> str:
        # the package's folder, found without importing it (importing scikit-learn alone takes seconds)
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        return os.path.join(locations[0], *sub) if locations else ""

    roots = {"skimage": folder("skimage", "data"), "sklearn": folder("sklearn", "datasets", "images")}
    out = []
    for pkg, names in BUILTIN_PHOTOS.items():
        for n in names:
            p = os.path.join(roots[pkg], n)
            if os.path.exists(p):
                out.append((f"{pkg}/{n}", p))
    if not out:
        raise ConfigError("input.path=builtin:photos: no photos found in scikit-image / scikit-learn")
    return sorted(out)


def _ext(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _detect_format(path: str, fs: fsspec.AbstractFileSystem) -> str:
    if path.startswith("builtin:"):
        return "builtin"
    ext = _ext(path)
    if ext == "tar" or "{" in path:
        return "tar"
    if ext == "parquet":
        return "parquet"
    if ext == "csv":
        return "csv"
    if fs.isdir(path):
        return "folder"
    raise ConfigError(
        f"input.path={path!r}: not a folder and not a .tar/.parquet/.csv file; "
        "set input.format to one of auto, folder, tar, parquet, csv, builtin"
    )


def _tar_entries(fs: fsspec.AbstractFileSystem, tar_path: str, cfg: InputConfig) -> list[dict[str, Any]]:
    """Image members of one tar, with captions from sibling .txt/.json members; unsafe members are refused."""
    exts = {e.lower() for e in cfg.extensions}
    entries: list[dict[str, Any]] = []
    captions: dict[str, str] = {}
    uri = fs.unstrip_protocol(tar_path)
    with fs.open(tar_path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for m in tar:
            name = m.name
            if name.startswith("/") or ".." in name.split("/"):
                entries.append(
                    {"uri": f"{uri}#{name}", "reject": UNSAFE_MEMBER, "detail": "absolute path or '..' in member name"}
                )
                continue
            if m.issym() or m.islnk():
                if _ext(name) in exts:
                    entries.append({"uri": f"{uri}#{name}", "reject": UNSAFE_MEMBER, "detail": "link member"})
                continue
            if not m.isfile():
                continue
            base, ext = (name.rsplit(".", 1) + [""])[:2]
            ext = ext.lower()
            if ext in FORBIDDEN_EXTENSIONS:  # pickled objects: never loaded, refused where reviewers can see it
                entries.append(
                    {"uri": f"{uri}#{name}", "reject": UNSAFE_MEMBER, "detail": f"pickle-capable member .{ext}"}
                )
                continue
            if ext == "txt" and m.size < 65536:
                fh = tar.extractfile(m)
                captions[base] = fh.read().decode("utf-8", "replace").strip() if fh else ""
            elif ext in exts:
                entries.append(
                    {
                        "uri": f"{uri}#{name}",
                        "rel": f"{posixpath.basename(tar_path)}#{name}",
                        "tar": uri,
                        "member": name,
                        "size": m.size,
                        "_base": base,
                    }
                )
    for e in entries:
        base = e.pop("_base", None)
        if base is not None and base in captions:
            e["caption"] = captions[base]
    return entries


def _list_table(path: str, fs: fsspec.AbstractFileSystem, cfg: InputConfig, fmt: str) -> list[dict[str, Any]]:
    with fs.open(path, "rb") as f:
        table = pq.read_table(f) if fmt == "parquet" else pacsv.read_csv(f)
    if cfg.path_column not in table.column_names:
        raise ConfigError(
            f"input.path_column={cfg.path_column!r}: no such column in {path}; columns: {', '.join(table.column_names)}"
        )
    base = posixpath.dirname(path)
    paths = table.column(cfg.path_column).to_pylist()
    caps = (
        table.column(cfg.caption_column).to_pylist()
        if cfg.caption_column and cfg.caption_column in table.column_names
        else [None] * len(paths)
    )
    out = []
    for p, c in zip(paths, caps):
        if not p:
            continue
        p = str(p)
        full = p if ("://" in p or p.startswith("/")) else posixpath.join(base, p)
        out.append({"uri": full if "://" in full else fs.unstrip_protocol(full), "rel": p, "caption": c or ""})
    return out


def list_entries(cfg: InputConfig) -> list[dict[str, Any]]:
    """Every input entry, sorted by URI so that the plan (and so every key and shard) is reproducible."""
    path = cfg.path
    if path.startswith("builtin:"):
        if path != "builtin:photos":
            raise ConfigError(f"input.path={path!r}: the only builtin input is builtin:photos")
        entries = [
            {"uri": "file://" + p, "rel": rel, "caption": BUILTIN_CAPTIONS.get(rel, "")} for rel, p in builtin_photos()
        ]
    else:
        fs, root = fsspec.core.url_to_fs(path)
        fmt = cfg.format if cfg.format != "auto" else _detect_format(path, fs)
        if fmt == "folder":
            if not fs.isdir(root):
                raise ConfigError(f"input.path={path!r}: folder does not exist")
            exts = {e.lower() for e in cfg.extensions}
            entries = []
            for p in fs.find(root):
                e = _ext(p)
                if e in exts:
                    entries.append({"uri": fs.unstrip_protocol(p), "rel": posixpath.relpath(p, root)})
                elif e == "tar":
                    entries.extend(_tar_entries(fs, p, cfg))
        elif fmt == "tar":
            tars = (
                [t for pat in braceexpand(root) for t in sorted(fs.glob(pat))] if "{" in root or "*" in root else [root]
            )
            if not tars or not all(fs.exists(t) for t in tars):
                raise ConfigError(f"input.path={path!r}: tar file(s) not found")
            entries = [e for t in tars for e in _tar_entries(fs, t, cfg)]
        elif fmt in ("parquet", "csv"):
            if not fs.exists(root):
                raise ConfigError(f"input.path={path!r}: file does not exist")
            entries = _list_table(root, fs, cfg, fmt)
        else:
            raise ConfigError(f"input.format={fmt!r} does not fit input.path={path!r}")
    entries.sort(key=lambda e: e["uri"])
    if cfg.limit:
        entries = entries[: cfg.limit]
    if not entries:
        raise ConfigError(f"input.path={path!r}: no inputs with extensions {cfg.extensions}")
    return entries


def plan_partitions(entries: list[dict[str, Any]], per_partition: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix}-{i // per_partition:05d}", "entries": entries[i : i + per_partition]}
        for i in range(0, len(entries), per_partition)
    ]
