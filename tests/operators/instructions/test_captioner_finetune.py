"""Captioner fine-tuning end to end on CPU: build shards, export reviewed samples in InternVL's conversation
format (reviewer-dropped keys left out), LoRA-fine-tune a tiny InternVL with `datagen finetune-captioner`,
and load the merged checkpoint through the captioner's transformers backend."""

import json

import pytest

from datagen.shards.reader import iter_samples
from operators.instructions.captioner_data import ANNOTATION, META, export_captioner_data
from operators.instructions.prompts import captioner_prompt
from operators.models.backends.base import BackendConfig, ChatRequest, make_backend
from pipelines import build_recipe, run
from pipelines.cli import main


def _shards(tmp_path, photo_dir):
    out = tmp_path / "shards"
    run(
        build_recipe(
            {
                "input": {"path": str(photo_dir), "max_side": 96},
                "output": {"dir": str(out)},
                "runtime": {"executor": "local", "progress": False},
                "operators": {"grayscale": {}, "canny": {}},
            }
        )
    )
    return out


def test_export_writes_internvl_conversations(tmp_path, photo_dir):
    shards = _shards(tmp_path, photo_dir)
    samples = list(iter_samples(shards))
    dropped = {samples[0].key, samples[1].key}
    marks = tmp_path / "marks.json"
    marks.write_text(json.dumps({"marks": [{"key": k, "flag": "bad"} for k in dropped]}))
    data = tmp_path / "data"
    assert main(["export-captioner-data", str(shards), "--out", str(data), "--drop-keys", str(marks)]) == 0
    rows = [json.loads(line) for line in (data / ANNOTATION).read_text().splitlines()]
    assert len(rows) == len(samples) - 2 and not {r["id"] for r in rows} & dropped
    by_key = {s.key: s for s in samples}
    for r in rows:
        s = by_key[r["id"]]
        human, gpt = r["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].count("<image>") == len(r["image"]) == len(s.current.inputs) + 1
        assert human["value"].endswith(captioner_prompt(len(s.current.inputs)))
        assert gpt["value"] == s.current.instruction
        assert all((data / p).is_file() for p in r["image"])
    meta = json.loads((data / META).read_text())
    (ds,) = meta.values()
    assert ds["length"] == len(rows) and ds["annotation"].endswith(ANNOTATION)
    only = export_captioner_data(shards, tmp_path / "only", tasks=["Grayscale"])
    assert only.tasks == {"Grayscale": len(list(photo_dir.iterdir()))} and only.skipped["task_not_selected"] > 0


@pytest.mark.slow
def test_lora_finetune_lowers_the_loss_and_the_merged_model_serves(tmp_path, photo_dir, tiny_internvl, photo, capsys):
    shards = _shards(tmp_path, photo_dir)
    data = tmp_path / "data"
    export_captioner_data(shards, data, limit=4)
    out = tmp_path / "captioner"
    rc = main(
        [
            "finetune-captioner",
            "--model",
            str(tiny_internvl),
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-steps",
            "30",
            "--grad-accum",
            "1",
            "--lr",
            "1e-2",
            "--lora-r",
            "8",
            "--warmup-steps",
            "2",
        ]
    )
    assert rc == 0
    log = json.loads((out / "finetune_log.json").read_text())
    assert log["steps"] == 30 and log["examples"] == 4
    assert log["last_loss"] < 0.5 * log["first_loss"], log
    assert (out / "adapter" / "adapter_config.json").is_file()
    backend = make_backend(BackendConfig(kind="transformers", model=str(out / "merged"), max_new_tokens=12))
    backend.setup()
    (res,) = backend.chat([ChatRequest(["Image-1: ", photo, "\nImage-2: ", photo, "\n" + captioner_prompt(1)])])
    assert res.ok
    assert "instructions.captioner.backend.model=" in capsys.readouterr().out
