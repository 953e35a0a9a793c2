"""Idempotence and resume: a finished job reruns as a no-op with unchanged bytes; a run killed at any moment
and started again ends with exactly the keys of an uninterrupted run, none twice."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datagen.config import ConfigError
from datagen.shards.reader import read_index
from datagen.shards.validate import validate_dir
from pipelines import load_recipe, run


def recipe(out, inp, *extra):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={inp}",
            f"output.dir={out}",
            "runtime.executor=local",
            "runtime.progress=false",
            "input.images_per_partition=1",
            "input.max_side=96",
            *extra,
        ],
    )


def snapshot(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}


def keys(out: Path) -> list[str]:
    return read_index(out).column("key").to_pylist()


def test_rerun_of_finished_job_changes_nothing(tmp_path, photo_dir):
    out = tmp_path / "out"
    first = run(recipe(out, photo_dir))
    before = snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    again = run(recipe(out, photo_dir))
    assert again["invocation"]["nothing_to_do"] is True
    assert again["samples"] == first["samples"]
    assert snapshot(out) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_partial_output_resumes_to_the_same_keys(tmp_path, photo_dir):
    ref = tmp_path / "ref"
    run(recipe(ref, photo_dir))
    out = tmp_path / "out"
    run(recipe(out, photo_dir))
    # simulate a crash: two partitions lost their markers, one shard half-written under a temp name
    markers = sorted((out / "_progress").glob("*.done.json"))
    for m in markers[:2]:
        m.unlink()
    (out / "img-00000-000.tar.tmp-deadbeef").write_bytes(b"partial")
    summary = run(recipe(out, photo_dir))
    assert summary["invocation"]["partitions_done"] == 2
    assert not list(out.glob("*.tmp-*"))
    assert sorted(keys(out)) == sorted(keys(ref)) and len(set(keys(out))) == len(keys(out))
    assert snapshot(out) == snapshot(ref)
    assert validate_dir(out)[1] == []


def test_output_of_another_recipe_is_refused(tmp_path, photo_dir):
    out = tmp_path / "out"
    run(recipe(out, photo_dir))
    with pytest.raises(ConfigError, match="different recipe"):
        run(recipe(out, photo_dir, "seed=5"))


def _kill_and_resume(tmp_path, photo_dir, executor, kill_after_markers):
    ref = tmp_path / "ref"
    run(recipe(ref, photo_dir))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "tests/tiny_recipe.yaml",
        f"input.path={photo_dir}",
        f"output.dir={out}",
        f"runtime.executor={executor}",
        "runtime.progress=false",
        "input.images_per_partition=1",
        "input.max_side=96",
        "runtime.num_cpus=2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "_progress").glob("*.done.json"))) >= kill_after_markers:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and every worker it started
    proc.wait()
    done_before = len(list((out / "_progress").glob("*.done.json")))
    summary = run(recipe(out, photo_dir, f"runtime.executor={executor}", "runtime.num_cpus=2"))
    assert sorted(keys(out)) == sorted(keys(ref))
    assert len(set(keys(out))) == len(keys(out))
    assert validate_dir(out)[1] == []
    return done_before, summary


@pytest.mark.parametrize("kill_after", [1, 3])
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, photo_dir, kill_after):
    done_before, summary = _kill_and_resume(tmp_path, photo_dir, "local", kill_after)
    assert done_before >= kill_after
    assert summary["partitions"] == len(list(photo_dir.iterdir()))  # the tiny recipe runs the per-image job only


@pytest.mark.slow
def test_killed_ray_run_resumes_without_loss_or_duplicates(tmp_path, photo_dir):
    _kill_and_resume(tmp_path, photo_dir, "ray", 2)
