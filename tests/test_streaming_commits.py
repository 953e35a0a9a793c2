"""Streaming commits: finished partitions land on storage while upstream work goes on, so a run killed at any moment
keeps what it finished. The demo recipe (every weight-free condition, rewrites checked by MiniLM in an actor pool,
LCU chains) runs on a loopback Ray cluster over a folder of photos; a run SIGKILLed at 40% of an uninterrupted run's
wall time has already committed at least a quarter of its partitions, and the resumed run does only the others and
ends with exactly the keys of the uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from datagen.ingest.listing import builtin_photos
from datagen.shards.reader import read_index
from datagen.shards.validate import validate_dir
from pipelines.rehearsal.loopback import loopback_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 120


def photo_folder(folder: Path, n: int, side: int = 160) -> Path:
    """n distinct real photos: crops of the shipped photographs at several offsets and scales."""
    folder.mkdir(parents=True)
    sources = [cv2.imread(str(p), cv2.IMREAD_COLOR) for _, p in builtin_photos()]
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        f = 0.6 + 0.1 * ((i // len(sources)) % 4)
        ch, cw = int(h * f), int(w * f)
        y, x = (h - ch) * (i % 3) // 2, (w - cw) * ((i // 3) % 3) // 2
        crop = img[y : y + ch, x : x + cw]
        s = side / max(ch, cw)
        cv2.imwrite(
            str(folder / f"p{i:03d}.png"),
            cv2.resize(crop, (round(cw * s), round(ch * s)), interpolation=cv2.INTER_AREA),
        )
    return folder


def keys(out: Path) -> list[str]:
    return sorted(read_index(out).column("key").to_pylist())


def test_killed_at_40_percent_has_committed_a_quarter_and_resumes_the_rest(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOS)
    with loopback_cluster(num_cpus=2) as c:

        def start(out: Path) -> subprocess.Popen:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipelines.cli",
                    "run",
                    "configs/demo.yaml",
                    f"input.path={photos}",
                    f"output.dir={out}",
                    "input.images_per_partition=1",
                    "pairing.enabled=false",
                    "runtime.progress=false",
                    "--address",
                    c["address"],
                ],
                env=c["env"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

        ref = tmp_path / "ref"
        t0 = time.monotonic()
        assert start(ref).wait(timeout=1200) == 0
        wall = time.monotonic() - t0
        total = len(json.loads((ref / "_plan" / "images.json").read_text())["partitions"])
        assert total == PHOTOS

        out = tmp_path / "out"
        t0 = time.monotonic()
        proc = start(out)
        while proc.poll() is None and time.monotonic() - t0 < 0.4 * wall:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before 40% of the reference's wall time"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver; Ray then ends the job's workers
        proc.wait()
        done_before = len(list((out / "_progress").glob("*.done.json")))
        print(f"reference {wall:.1f}s; at 40% ({0.4 * wall:.1f}s) {done_before} of {total} partitions were committed")
        assert done_before >= total / 4, f"{done_before} of {total} partitions committed at 40% of {wall:.0f}s"

        resumed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "run",
                "configs/demo.yaml",
                f"input.path={photos}",
                f"output.dir={out}",
                "input.images_per_partition=1",
                "pairing.enabled=false",
                "runtime.progress=false",
                "--address",
                c["address"],
            ],
            env=c["env"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((out / "run.json").read_text())
    assert summary["invocation"]["partitions_done"] == total - done_before
    a, b = read_index(out).select(["key", "task"]).to_pylist(), read_index(ref).select(["key", "task"]).to_pylist()
    only = sorted(
        {(r["task"], "resumed only") for r in a if r["key"] not in {x["key"] for x in b}}
        | {(r["task"], "uninterrupted only") for r in b if r["key"] not in {x["key"] for x in a}}
    )
    assert keys(out) == keys(ref) and len(set(keys(out))) == len(keys(out)), only
    assert validate_dir(out)[1] == []
