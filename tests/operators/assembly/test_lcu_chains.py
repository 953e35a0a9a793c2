"""LCU chains: each turn's input is the previous turn's output, history comes first, and history indicators are
rewritten as ACE's chat code does ({image} -> {image<i>} for turns i>0 before the current one)."""

import numpy as np

from datagen import schema
from datagen.shards.reader import iter_samples
from datagen.shards.validate import validate_dir
from pipelines import load_recipe, run


def _run(tmp_path, photo_dir, *extra):
    r = load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={tmp_path / 'out'}",
            "runtime.executor=local",
            "runtime.progress=false",
            "input.max_side=96",
            "operators.grayscale.enabled=true",
            "operators.canny.enabled=true",
            "operators.lcu_chains.enabled=true",
            *extra,
        ],
    )
    return run(r)


def test_chains_are_consistent_multi_turn_samples(tmp_path, photo_dir):
    _run(tmp_path, photo_dir, "operators.lcu_chains.max_history=3")
    out = tmp_path / "out"
    assert validate_dir(out)[1] == []
    samples = list(iter_samples(out))
    lcus = [s for s in samples if s.kind == schema.KIND_LCU]
    cus = {s.key: s for s in samples if s.kind == schema.KIND_CU}
    assert len(lcus) == len(list(photo_dir.iterdir()))
    for s in lcus:
        assert 2 <= len(s.turns) <= 4
        assert s.indicator_problems() == []
        # the chain is a chain: each input is (pixel for pixel, after lossless coding) the previous target
        for prev, cur in zip(s.turns, s.turns[1:]):
            a, b = prev.target.image.astype(int), cur.inputs[0].image.astype(int)
            assert a.shape == b.shape and np.abs(a - b).mean() < 3  # photos may pass through jpeg
        # history order and indicator rewriting: turn i>0 of the history says {image<i>}, the last says {image};
        # templates alone leave each CU one wording, so every turn says its CU's instruction
        comp = [cus[k] for k in s.provenance.params["turn_keys"]]
        for i, (turn, cu) in enumerate(zip(s.turns, comp)):
            assert turn.task == cu.task
            original = cu.current.instruction
            if 0 < i < len(s.turns) - 1:
                assert turn.instruction == original.replace("{image}", "{image%d}" % i)
                assert "{image}" not in turn.instruction
            else:
                assert turn.instruction == original
        assert s.task == comp[-1].task


def test_max_history_bounds_the_chain(tmp_path, photo_dir):
    _run(tmp_path, photo_dir, "operators.lcu_chains.max_history=1")
    lcus = [s for s in iter_samples(tmp_path / "out") if s.kind == schema.KIND_LCU]
    assert lcus and all(len(s.turns) == 2 for s in lcus)


def test_current_turn_says_it_another_way_than_its_cu(tmp_path, photo_dir):
    """With rewrites on, every turn of an LCU takes another wording its CU's instruction stage made (a kept
    rewrite or the template it rewrote), not the CU's own instruction, so no LCU turn repeats a CU word for word."""
    from operators.instructions.records import turn_record

    _run(tmp_path, photo_dir, "instructions.methods=[template,rewrite]")
    samples = list(iter_samples(tmp_path / "out"))
    cus = {s.key: s for s in samples if s.kind == schema.KIND_CU}
    lcus = [s for s in samples if s.kind == schema.KIND_LCU]
    assert lcus
    changed = turns = 0
    for s in lcus:
        for i, (turn, key) in enumerate(zip(s.turns, s.provenance.params["turn_keys"])):
            cu = cus[key]
            rec = turn_record(cu, 0)
            wordings = set(rec.alternates) | ({rec.source} if rec.source else set())
            said = (
                turn.instruction if i in (0, len(s.turns) - 1) else turn.instruction.replace("{image%d}" % i, "{image}")
            )
            turns += 1
            if wordings - {cu.current.instruction}:
                assert said != cu.current.instruction and said in wordings
                changed += 1
            else:
                assert said == cu.current.instruction
        if s.provenance.params["current_instruction"] == "alternate":
            assert s.current.instruction != cus[s.provenance.params["turn_keys"][-1]].current.instruction
        assert s.indicator_problems() == []
    assert changed >= turns // 2
