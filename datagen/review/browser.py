"""Headless Chromium for checking the HTML pages datagen writes: the DOM after scripts ran, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

# No background traffic: this machine's network is closed and Chromium would otherwise retry at every start.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: `make install` installs Debian's chromium package")


def _run(page: Path, *extra: str, fragment: str = "") -> subprocess.CompletedProcess:
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True, text=True, timeout=120
        )


def dump_dom(page: Path, fragment: str = "") -> str:
    """The DOM after the page's scripts ran; `fragment` is the address's #part (the review page reads #sort=...)."""
    res = _run(page, "--dump-dom", fragment=fragment)
    if res.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom failed: {res.stderr[-2000:]}")
    return res.stdout


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1600) -> Path:
    res = _run(page, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    if res.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium --screenshot failed: {res.stderr[-2000:]}")
    return png
