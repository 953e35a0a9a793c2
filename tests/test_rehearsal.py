"""`datagen rehearse configs/ace_full.yaml --cluster gpus=4,cpus=4`: the whole cluster recipe, every model stage on a
tiny checkpoint of its real architecture, on a loopback Ray cluster with as many CPUs as GPUs. Every partition is
committed exactly once (the pairs job's too), every model stage of the recipe processed items, every GPU pool's
actors were alive at the same time, and the output holds all eight of ACE's task groups and the judge's scores."""

import json
from pathlib import Path

import pytest

from datagen.planning import ClusterShape
from datagen.schema import TASK_GROUPS
from pipelines.rehearsal.rehearse import rehearse

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
ROOT = Path(__file__).resolve().parents[1]


def test_ace_full_rehearses_on_four_gpus_and_four_cpus(tmp_path):
    outcome = rehearse(str(ROOT / "configs" / "ace_full.yaml"), ClusterShape(cpus=4, gpus=4), photos=4, keep=tmp_path)
    assert outcome.returncode == 0, outcome.log[-4000:]
    out = outcome.out_dir
    for job in ("images", "features", "pairs"):  # the rehearsal's open pairing bands give the pairs job work
        plan = [p["name"] for p in json.loads((out / "_plan" / f"{job}.json").read_text())["partitions"]]
        assert plan, job
        markers = sorted(
            p.name.removesuffix(".done.json") for p in (out / "_progress").glob(f"{plan[0][:4]}*.done.json")
        )
        assert markers == sorted(plan), job
    stats = outcome.run["stages"]
    ran = {name for name, st in stats.items() if st["items_in"] > 0}
    models = {
        "segmentation",
        "depth",
        "pose",
        "doodle",
        "contour",
        "scribble",
        "remove_object",
        "replace_object",
        "background_change",
        "style_transfer",
        "layers",
        "subject_reference",
        "siglip_features",
        "face_features",
        "nsfw_score",
        "clip_scores",
        "dino_score",
        "judge_scores",
        "rewrite_instructions",
    }
    assert models <= ran, sorted(models - ran)
    assert outcome.waves[0] == ["images", "features"] and len(outcome.waves) > 1
    first = outcome.gpu_pools(outcome.waves[0])
    assert len(first) >= 15
    for wave in outcome.waves:  # the pools of a wave share the four GPUs (pairing's jobs run in waves after it)
        assert sum(sp["gpus_per_worker"] * sp["pool_initial"] for sp in outcome.gpu_pools(wave)) <= 4 + 1e-9
    # every GPU pool's first actors of the first wave alive at once, the way the plan asked for them
    assert outcome.gpu_actors_at_once == sum(sp["pool_initial"] for sp in first), outcome.table()
    assert "GPU pools per wave" in outcome.table()
    # the judge's scores reach the output (a tiny judge trained to answer in its format)
    from datagen.shards.reader import read_index

    index = read_index(out).to_pylist()
    assert index and any(r["score_judge_semantics"] is not None for r in index)
    # all eight of ACE's task groups (multi-turn sessions are built from them later), layer editing and reference
    # generation included: the tiny SAM is taught object-sized masks, so the mattes leave room for a background
    groups = {r["task_group"] for r in index}
    assert set(TASK_GROUPS) - {"multi_turn"} <= groups, sorted(set(TASK_GROUPS) - groups)
    assert any(r["task_group"] == "reference_generation" and r["shard"].startswith("pair") for r in index), "no pairs"
