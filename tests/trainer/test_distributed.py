"""Two processes on CPU (gloo) through torchrun, the way multi-GPU runs launch. DDP: the ranks train together
and, in every epoch, see disjoint samples that together cover the data (minus the held-out preview CUs).
FSDP: parameters sharded per block, and the checkpoint still holds the whole model, loadable without FSDP."""

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest
import torch
from safetensors.torch import load_file

from datagen.shards.reader import read_index
from datagen.trainer.loader import holdout_keys, list_shards


def _torchrun(shard_dir, run, *overrides):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "datagen.cli",
        "train",
        "configs/train_tiny.yaml",
        f"data.path={shard_dir}",
        f"output.dir={run}",
        "preview.steps=2",
        *overrides,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]


@pytest.mark.slow
def test_two_rank_ddp_ranks_see_disjoint_samples(shard_dir, tmp_path):
    run = tmp_path / "ddp"
    _torchrun(
        shard_dir,
        run,
        "trainer.max_steps=24",
        "trainer.record_keys=true",
        "trainer.log_every=4",
        "trainer.ckpt_every=12",
    )
    summary = json.loads((run / "train.json").read_text())
    assert summary["world"] == 2 and summary["strategy"] == "ddp" and summary["step"] == 24

    seen = {}  # rank -> epoch -> keys
    for rank in (0, 1):
        rows = [json.loads(line) for line in (run / "keys" / f"rank-{rank}.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == list(range(1, 25))
        by_epoch = defaultdict(list)
        for r in rows:
            for b in r["batches"]:
                by_epoch[b["epoch"]].extend(b["keys"])
        seen[rank] = by_epoch
    all_keys = set(read_index(shard_dir).column("key").to_pylist())
    held = set(holdout_keys(list_shards(str(shard_dir)), 2, seed=0))
    for epoch in set(seen[0]) | set(seen[1]):
        a, b = seen[0].get(epoch, []), seen[1].get(epoch, [])
        assert len(a) == len(set(a)) and len(b) == len(set(b)), f"a rank repeated a sample in epoch {epoch}"
        assert not set(a) & set(b), f"ranks shared samples in epoch {epoch}"
        assert not (set(a) | set(b)) & held
    # both ranks went past epoch 0, so epoch 0 is complete: together they covered every trainable sample once
    assert max(seen[0]) >= 1 and max(seen[1]) >= 1
    assert set(seen[0][0]) | set(seen[1][0]) == all_keys - held
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [4, 8, 12, 16, 20, 24]
    state = json.loads((run / "checkpoints" / "step-000024" / "state.json").read_text())
    assert state["data"]["world"] == 2 and set(state["data"]["positions"]) == {"0", "1"}


@pytest.mark.slow
def test_two_rank_fsdp_checkpoint_holds_the_whole_model(shard_dir, tmp_path):
    from datagen.trainer.models import ACEDiT, size_spec

    run = tmp_path / "fsdp"
    _torchrun(
        shard_dir, run, "trainer.max_steps=4", "trainer.strategy=fsdp", "trainer.precision=fp32", "data.num_workers=0"
    )
    summary = json.loads((run / "train.json").read_text())
    assert summary["strategy"] == "fsdp" and summary["world"] == 2
    ck = run / "checkpoints" / "step-000004"
    weights, ema = load_file(str(ck / "model.safetensors")), load_file(str(ck / "ema.safetensors"))
    model = ACEDiT(latent_channels=4, text_dim=32, **size_spec("tiny"))
    model.load_state_dict(weights)  # strict: every parameter, unsharded
    assert set(ema) == {n for n, _ in model.named_parameters()}
    assert all(ema[n].shape == p.shape for n, p in model.named_parameters())
    opt = torch.load(ck / "optimizer.pt", weights_only=True)
    assert opt["state"]
