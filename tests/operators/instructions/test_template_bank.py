"""Template bank and template stage: every task has a bank, every phrasing fills to a sentence whose indicators
fit its sample, keeps its task's key terms and leaves no placeholder behind; choices are seeded by the sample
key; chains get renumbered indicators; provenance is copied before it is written."""

import re

import numpy as np
import pytest

from datagen import schema
from datagen.batch import WorkBatch
from datagen.schema import Frame, Provenance, Sample, Turn, indicator_problems, indicators
from operators.instructions.grammar import compile_pattern
from operators.instructions.template_bank import TASK_TERMS, TEMPLATES
from operators.instructions.templates import SLOT_RE, TemplateInstructions, bank, fill_template, usable_lines
from operators.instructions.text import clean_caption, normalize_answer, shift_indicators, unusable_reason

SLOTS = {
    "object": "the dark object on the left",
    "new_object": "a cat",
    "style": "a watercolour painting",
    "background": "a blurred background",
    "layer": "the foreground layer",
}


def test_grammar_counts_and_decodes_every_phrasing():
    p = compile_pattern("[Make|Turn] {image} [black and white|gray][| please].")
    phrasings = p.all()
    assert p.size == 2 * 2 * 2 == len(set(phrasings))
    assert "Make {image} gray please." in phrasings and "Turn {image} black and white." in phrasings
    nested = compile_pattern("a [b|c [d|e]] f")
    assert sorted(nested.all()) == ["a b f", "a c d f", "a c e f"]
    with pytest.raises(ValueError):
        compile_pattern("[unclosed")
    with pytest.raises(ValueError):
        compile_pattern("a | b")


@pytest.mark.parametrize("task", sorted(schema.TASKS))
def test_every_phrasing_of_every_task_is_well_formed(task):
    spec = schema.TASKS[task]
    assert task in TEMPLATES, f"{task} has no template bank"
    lines = bank(task, spec.direction)
    assert len(lines) >= 4
    n_inputs = 0 if spec.direction == schema.DIRECTION_TEXT else 1
    if task in ("Reference Generation", "Layer Fusion"):
        n_inputs = 2
    plain, captioned = usable_lines(task, spec.direction, n_inputs, has_caption=True)
    assert plain and captioned, "both caption and caption-free phrasings are needed"
    total = 0
    for li in plain + captioned:
        pattern = compile_pattern(lines[li])
        total += pattern.size
        for text in pattern.all()[:400]:
            text = text.replace("{caption}", "a red bicycle")
            assert indicator_problems(text, n_inputs) == [], text
            assert not re.search(r"\{(?!image\d?\})", text), text
            assert "  " not in text and " ." not in text, text
            if n_inputs:
                assert indicators(text), text
            if task in TASK_TERMS:
                assert re.search(TASK_TERMS[task], text, re.IGNORECASE), f"{task}: {text!r} lost the task's key terms"
    assert total >= 60, f"{task}: only {total} phrasings"
    # lines that name a synthesized edit's object or style: used when the maker gives those words, and filled with them
    named, named_cap = usable_lines(task, spec.direction, n_inputs, has_caption=True, slots=frozenset(SLOTS))
    for li in {*named, *named_cap} - {*plain, *captioned}:
        for text in compile_pattern(lines[li]).all()[:400]:
            text = SLOT_RE.sub(lambda m: SLOTS[m.group(1)], text.replace("{caption}", "a red bicycle"))
            assert indicator_problems(text, n_inputs) == [] and not re.search(r"\{(?!image\d?\})", text), text
            assert "  " not in text and " ." not in text, text
            assert any(v in text for v in SLOTS.values()), f"{task}: {text!r} names nothing"


def test_fill_is_seeded_varied_and_uses_the_caption():
    a = fill_template("Edge map Extraction", "analysis", "A tabby cat.", seed=7)
    assert a == fill_template("Edge map Extraction", "analysis", "A tabby cat.", seed=7)
    for task, spec in schema.TASKS.items():
        if spec.direction == schema.DIRECTION_TEXT:
            continue  # text-to-image says nothing without a caption; it is checked with captions below
        texts = [fill_template(task, spec.direction, "", seed=s, n_inputs=1).text for s in range(20)]
        assert len(set(texts)) >= 18, (task, texts)  # >= 90% distinct without any caption
        assert all(t[0].isupper() or t.startswith("{") for t in texts)
    with_caption = [
        fill_template("Image Colorization", "generation", "a tabby cat", seed=s, prefer_caption=1.0) for s in range(10)
    ]
    assert all(f.used_caption and "a tabby cat" in f.text for f in with_caption)


def test_multi_input_and_chain_indicators():
    texts = [fill_template("Reference Generation", "reference", "a dog", seed=s, n_inputs=2).text for s in range(30)]
    assert all("{image1}" in t and "{image2}" in t for t in texts)
    one = [fill_template("Reference Generation", "reference", "a dog", seed=s, n_inputs=1).text for s in range(30)]
    assert all("{image2}" not in t and indicator_problems(t, 1) == [] for t in one)
    assert (
        shift_indicators("Put {image1} into {image2}; keep {image}.", 2) == "Put {image3} into {image4}; keep {image}."
    )
    t2i = [fill_template("Text-to-Image", "text", "a lighthouse at dusk", seed=s, n_inputs=0).text for s in range(20)]
    assert all(not indicators(t) and "lighthouse" in t for t in t2i)


def test_synthesized_edits_name_their_object_or_style():
    """A maker's words go into the instruction, and slot lines never appear without them."""
    for task, slots in (
        ("Remove Object", {"object": "the dark object on the left"}),
        ("Add Object", {"object": "a dark object on the left"}),
        ("Style Transfer", {"style": "a pencil sketch"}),
        ("Replace Object", {"object": "the dog", "new_object": "a cat"}),
        ("Background Change", {"object": "the dog", "background": "a snowy mountain landscape"}),
    ):
        for seed in range(15):
            text = fill_template(task, "edit", "a dog in a park", seed=seed, slots=slots).text
            assert any(v in text for v in slots.values()) and indicator_problems(text, 1) == [], text
            bare = fill_template(task, "edit", "a dog in a park", seed=seed).text
            assert not SLOT_RE.search(bare) and "{" not in bare.replace("{image}", ""), bare
    fused = [
        fill_template("Layer Fusion", "edit", "", seed=s, n_inputs=2, slots={"object": "the cat"}).text
        for s in range(10)
    ]
    assert all("{image1}" in t and "{image2}" in t and "the cat" in t for t in fused)


def test_captions_cannot_inject_indicators_or_markup():
    assert clean_caption("A {image2} <b>cat</b>.") == "a image2 cat"
    assert clean_caption("NASA rocket launch") == "NASA rocket launch"
    assert clean_caption("  ") == ""


def test_answer_normalisation_and_usability():
    assert normalize_answer('Instruction: "Make <image> brighter."', 1) == "Make {image} brighter."
    assert normalize_answer("1. Put Image-1 into [image2]", 2) == "Put {image1} into {image2}"
    assert normalize_answer("Turn {image1} red", 1) == "Turn {image} red"
    assert unusable_reason("Make {image} brighter.", 1) is None
    assert unusable_reason("Make it brighter.", 1) == "no_indicator"
    assert unusable_reason("Combine {image1} and {image3}.", 2) == "bad_indicator"
    assert unusable_reason("I'm sorry, I cannot edit {image}.", 1) == "refusal"
    assert unusable_reason("", 1) == "empty_answer"
    assert unusable_reason("Fill {caption} into {image}.", 1) == "leftover_placeholder"


def _sample(task, direction, inputs, caption="a cat", prov=None):
    img = np.zeros((16, 16, 3), np.uint8)
    turn = Turn(task, direction, [Frame(img) for _ in range(inputs)], Frame(img), caption=caption)
    prov = prov or Provenance(["file:///a.png"], ["id-a"], "grayscale", "1")
    return Sample([turn], prov)


def test_stage_fills_every_turn_records_it_and_copies_shared_provenance():
    shared = Provenance(["file:///a.png"], ["id-a"], "grayscale", "1", params={"k": 1})
    batch = WorkBatch("img-00000", {}, seed=3, recipe="r")
    batch.samples = [
        _sample("Grayscale", "analysis", 1, prov=shared),
        _sample("Image Colorization", "generation", 1, prov=shared),
    ]
    img = np.zeros((16, 16, 3), np.uint8)
    chain = [
        Turn("Edge-guided Generation", "generation", [Frame(img)], Frame(img), caption="a cat"),
        Turn("Edge map Extraction", "analysis", [Frame(img)], Frame(img), caption="a cat"),
        Turn("Edge-guided Generation", "generation", [Frame(img)], Frame(img), caption="a cat"),
    ]
    batch.samples.append(Sample(chain, Provenance(["file:///a.png"], ["id-a"], "lcu_chains", "1")))
    keys = [s.key for s in batch.samples]
    TemplateInstructions()(batch)
    assert [s.key for s in batch.samples] == keys  # keys name content; instructions do not change them
    assert shared.params == {"k": 1}  # the makers' shared provenance is not written through
    for s in batch.samples:
        assert s.indicator_problems() == []
        for i, t in enumerate(s.turns):
            assert t.instruction and t.instruction_method == "template"
            assert t.instruction_record.template.startswith(t.task + "#")
    assert all(s.provenance.params["k"] == 1 for s in batch.samples[:2])  # the makers' params are kept
    # ACE's chat convention for a history turn: its own input becomes {image<i>}
    mid = batch.samples[2].turns[1].instruction
    assert "{image1}" in mid and "{image}" not in mid
    again = WorkBatch("img-00000", {}, seed=3, recipe="r")
    again.samples = [
        _sample(
            "Grayscale", "analysis", 1, prov=Provenance(["file:///a.png"], ["id-a"], "grayscale", "1", params={"k": 1})
        )
    ]
    TemplateInstructions()(again)
    assert again.samples[0].current.instruction == batch.samples[0].current.instruction
