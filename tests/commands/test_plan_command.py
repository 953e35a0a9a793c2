"""`datagen plan`: the placement of every stage of ace_full on a declared cluster, printed as a table; a shape with
no GPU, or one too small for the recipe's largest actor, is refused within seconds, naming the stage and what is
missing (exit status 2), before anything starts."""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def plan(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "plan", "configs/ace_full.yaml", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return res, time.perf_counter() - t0


def test_a_fitting_shape_prints_every_stage():
    res, _ = plan("--cluster", "gpus=8,cpus=96,nodes=1")
    assert res.returncode == 0, res.stderr[-2000:]
    for stage in ("segmentation", "remove_object", "style_transfer", "siglip_features", "nsfw_score", "read_pairs"):
        assert stage in res.stdout, stage
    # nothing is dropped on the driver for want of its models or vLLM there: those are asked on the workers
    for stage in ("clip_scores", "face_features", "captioner_instructions", "rewrite_instructions", "judge_scores"):
        assert stage in res.stdout, stage
    assert "96 CPUs and 8 GPUs on 1 node(s)" in res.stdout


def test_no_gpu_is_refused_quickly_naming_the_stages():
    res, seconds = plan("--cluster", "gpus=0,cpus=8")
    assert res.returncode == 2 and seconds < 10, (res.returncode, seconds)
    assert "the cluster has no GPU" in res.stderr and "remove_object+replace_object+background_change (1)" in res.stderr


def test_a_node_smaller_than_the_largest_actor_is_refused_quickly():
    res, seconds = plan("--cluster", "gpus=1,cpus=2")
    assert res.returncode == 2 and seconds < 10, (res.returncode, seconds)
    # the largest actor: the captioner's vLLM at tensor_parallel_size 2 (listed even where the driver lacks vLLM)
    assert "stage captioner_instructions needs 2 GPUs per actor on one node; the nodes have 1" in res.stderr


def test_a_bad_shape_names_the_key():
    res, _ = plan("--cluster", "gpu=8,cpus=8")
    assert res.returncode == 2 and "'gpu=8' is not one of" in res.stderr


def test_nodes_too_small_for_an_actor_are_refused_naming_it():
    """6 CPUs in all would hold SigLIP's 4-CPU actor, but each of the two nodes has 3: an actor runs on one node."""
    res, seconds = plan("--cluster", "gpus=8,cpus=6,nodes=2")
    assert res.returncode == 2 and seconds < 10, (res.returncode, seconds)
    assert "stage siglip_features needs 4 CPUs per actor on one node; the largest node with a GPU has 3" in res.stderr
