"""Instruction from the outcome: after the quality filter, the VLM says what each kept output shows; the instruction
it replaces stays as `instruction_original`, and an answer that fails the checks every instruction passes (an
indicator for the input, not a repeat of the task's instructions) keeps the original, counted."""

from collections import Counter

from datagen.schema import METHOD_OUTCOME
from datagen.shards.reader import iter_samples, read_index
from datagen.shards.validate import validate_dir
from pipelines import load_recipe, run
from pipelines.images import JOB as images_job


def test_kept_samples_say_what_their_output_shows(chat_server, photo_dir, tmp_path):
    server = chat_server(kinds=("ok",))
    out = tmp_path / "out"
    backend = f"{{kind: openai, model: outcome-vlm, base_url: '{server.url}', batch_size: 8}}"
    recipe = load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={out}",
            "input.max_side=64",
            "input.limit=3",
            "input.images_per_partition=3",
            "instructions.methods=[template, outcome]",
            f"instructions.outcome={{backend: {backend}}}",
            "operators.pixel_scores={}",
            "operators.quality_filter={}",
        ],
    )
    order = [op.name for op in images_job.stages(recipe)]
    assert order.index("outcome_instructions") == order.index("quality_filter") + 1  # on what the filter kept
    summary = run(recipe)
    stages = summary["stages"]
    samples = list(iter_samples(out))
    rewritten = [s for s in samples if s.current.instruction_method == METHOD_OUTCOME]
    kept = [s for s in samples if s.current.instruction_method != METHOD_OUTCOME]
    assert rewritten and kept
    for s in rewritten:
        rec = s.current.instruction_record
        assert rec.instruction_original and rec.instruction_original != s.current.instruction
        assert "as the output shows" in s.current.instruction and "{image" in s.current.instruction
        assert rec.instruction_original.rstrip(".") in s.current.instruction
    reasons = Counter(s.current.instruction_record.fallback for s in kept)
    assert set(reasons) <= {"no_indicator", "not_distinct"} and reasons
    skipped = stages["outcome_instructions"]["skipped"]
    assert {k.split(":", 1)[1]: v for k, v in skipped.items()} == dict(reasons)
    assert all(not s.current.instruction_record.instruction_original for s in kept)
    # history turns of a chain keep theirs; the index shows the new instruction; every check of a run still holds
    index = {r["key"]: r for r in read_index(out).to_pylist()}
    assert all(index[s.key]["instruction"] == s.current.instruction for s in samples)
    assert all(index[s.key]["instruction_method"] == METHOD_OUTCOME for s in rewritten)
    assert validate_dir(out)[1] == [] and all(s.indicator_problems() == [] for s in samples)
