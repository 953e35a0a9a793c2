"""Rewrites: the rule-based paraphraser keeps indicators verbatim; kept rewrites are distinct from the template
and from each other by MiniLM cosine, keep the task's meaning, and are recorded; an LLM rewriter behind a
misbehaving endpoint falls back to the template (counted) and its bad lines are rejected."""

import numpy as np

from datagen.batch import WorkBatch
from datagen.schema import Frame, Provenance, Sample, Turn, indicators
from operators.instructions.config import RewriteConfig
from operators.instructions.embedder import TextEmbedder
from operators.instructions.meaning import meaning_problem, select_rewrites
from operators.instructions.paraphrase import RuleParaphraser
from operators.instructions.rewrites import RewriteInstructions, embedding_text, parse_rewrites, skeleton
from operators.instructions.templates import TemplateInstructions
from operators.models.backends.base import BackendConfig

_EMB = TextEmbedder()  # the stage default: ONNX Runtime, fp32


def _batch(n=6, task="Image Colorization", direction="generation", inputs=1):
    img = np.zeros((16, 16, 3), np.uint8)
    batch = WorkBatch("img-00000", {}, seed=1, recipe="r")
    caps = ["a tabby cat", "a red motorcycle", "a cup of coffee", "a rocket on its pad", "a brick wall", "a flower"]
    for i in range(n):
        turn = Turn(task, direction, [Frame(img) for _ in range(inputs)], Frame(img), caption=caps[i % len(caps)])
        batch.samples.append(Sample([turn], Provenance([f"file:///{i}.png"], [f"id{i}"], "grayscale", "1")))
    TemplateInstructions()(batch)
    return batch


def test_paraphraser_keeps_indicators_and_is_seeded():
    p = RuleParaphraser()
    src = "Place the subject of {image1} into the scene of {image2}."
    a = p.candidates(src, np.random.default_rng(3), 8)
    assert a == p.candidates(src, np.random.default_rng(3), 8)
    assert len(a) >= 5 and src not in a and len(set(a)) == len(a)
    for c in a:
        assert sorted(indicators(c)) == ["1", "2"], c
    assert any(c != src and c.lower().rstrip(".?") != src.lower().rstrip(".") for c in a)


def test_meaning_checks_reject_what_changes_the_instruction():
    assert meaning_problem("Image Colorization", "Colorize {image}.", "Colorize the picture.") == "indicators_changed"
    assert meaning_problem("Image Colorization", "Colorize {image}.", "Make {image} pretty.") == "task_terms_lost"
    assert (
        meaning_problem("Image Colorization", "Colorize {image}.", "Please colorize {image} {caption}.")
        == "stray_braces"
    )
    assert meaning_problem("General Editing", "Edit {image}.", "Change {image} a bit.") is None
    src = "Add natural colours to the grayscale photo {image}."
    cands = [
        "Add natural colours to the grayscale photo {image}, please.",  # near-copy: not distinct
        "Could you bring realistic colour back into the black-and-white picture {image}?",
        "Paint {image} with colour, a rocket taking off from the moon at night in the year 2300.",
        "Colorize {image} with natural tones.",
    ]
    vecs = _EMB.encode([src, *cands])
    sel = select_rewrites("Image Colorization", src, cands, vecs, n=3, max_similarity=0.95, min_similarity=0.5)
    assert cands[0] not in sel.kept and sel.rejected.get("not_distinct", 0) >= 1
    assert cands[1] in sel.kept and cands[3] in sel.kept
    assert cands[2] not in sel.kept and sel.rejected.get("meaning_drift", 0) == 1  # drifted off the edit
    kept = _EMB.encode(sel.kept)
    sims = kept @ kept.T
    assert (sims[~np.eye(len(kept), dtype=bool)] < 0.95).all()


def test_rule_rewrite_stage_records_distinct_alternates():
    batch = _batch()
    templates = [s.current.instruction for s in batch.samples]
    stage = RewriteInstructions(RewriteConfig(n=3, candidates=8))
    stage.setup()
    stage(batch)
    assert "rule-based paraphraser" in stage.describe()
    for s, t in zip(batch.samples, templates):
        rec = s.turns[0].instruction_record
        if s.current.instruction_method == "template":
            continue  # no candidate was distinct enough: counted, the template stays
        assert s.current.instruction_method == "rule_rewrite"
        assert rec.source == t and s.current.instruction in rec.alternates
        # judged on the wording around the caption (the caption is the same in all of them, verbatim)
        skel, cap = skeleton(t, s.current.caption)
        alts = [a.replace(cap, "{caption}") if cap else a for a in rec.alternates]
        assert all(a.count("{caption}") == skel.count("{caption}") for a in alts)
        vecs = _EMB.encode([embedding_text(x) for x in [skel, *alts]])
        sims = vecs @ vecs.T
        assert (sims[~np.eye(len(vecs), dtype=bool)] < 0.95).all()
        assert (sims[0, 1:] >= 0.5).all()
        assert (
            indicators(s.current.instruction)
            == [
                "",
            ]
            and s.indicator_problems() == []
        )
    methods = [s.current.instruction_method for s in batch.samples]
    assert methods.count("rule_rewrite") >= 4
    kept_template = batch.stats["rewrite_instructions"].skipped.get("kept_template:no_distinct_rewrite", 0)
    assert kept_template == methods.count("template")


def test_llm_rewriter_behind_a_misbehaving_endpoint(chat_server):
    assert parse_rewrites('1. Could you colorize {image}?\n- "Paint {image}."\n\n') == [
        "Could you colorize {image}?",
        "Paint {image}.",
    ]
    server = chat_server(slow_s=1.0)
    backend = BackendConfig(
        kind="openai",
        model="llm",
        base_url=server.url,
        timeout_s=0.3,
        max_retries=1,
        backoff_s=0.01,
        concurrency=4,
        max_failure_rate=None,  # most requests fail on purpose: per request, not a broken engine
        max_consecutive_failures=None,
    )
    batch = _batch(n=14)
    stage = RewriteInstructions(RewriteConfig(rewriter="llm", backend=backend, n=2))
    stage.setup()
    stage(batch)
    assert len(batch.samples) == 14
    methods = [s.current.instruction_method for s in batch.samples]
    fallbacks = sum(
        v for k, v in batch.stats["rewrite_instructions"].skipped.items() if k.startswith("fallback_template:")
    )
    skipped = batch.stats["rewrite_instructions"].skipped
    # every bad answer (500, timeout, malformed, dropped, refusal) falls back; a good answer can too, when none
    # of its lines is distinct enough: both are counted by reason
    no_usable = skipped.get("fallback_template:no_usable_rewrite", 0)
    assert (
        methods.count("fallback_template") == fallbacks == server.bad() + no_usable - 2
    )  # the 2 refusals are no_usable too
    assert {k for k in skipped if k.startswith("fallback_template:")} <= {
        "fallback_template:http_500",
        "fallback_template:timeout",
        "fallback_template:malformed_json",
        "fallback_template:connection",
        "fallback_template:no_usable_rewrite",
    }
    assert methods.count("llm_rewrite") >= 2
    assert skipped.get("rejected_rewrite:indicators_changed", 0) >= 1  # "Do something nice with the picture."
    for s in batch.samples:
        rec = s.turns[0].instruction_record
        if s.current.instruction_method == "llm_rewrite":
            assert rec.rewriter == "llm" and s.current.instruction != rec.source
            assert s.current.instruction in rec.alternates
        else:
            assert rec.method == "fallback_template" and rec.fallback
        assert s.indicator_problems() == []


def test_rules_rewrite_around_the_caption_and_keep_it_verbatim():
    from operators.instructions.rewrites import skeleton

    cap = "a tabby cat looking to the side"
    text = f"{{image}} is a segment map. Generate a realistic picture of {cap} on top of it."
    skel, got = skeleton(text, "A tabby cat looking to the side.")
    assert got == cap and skel == "{image} is a segment map. Generate a realistic picture of {caption} on top of it."
    assert skeleton("Colorize {image}.", "a cat") == ("Colorize {image}.", "")  # no caption in the text: as it is
    assert embedding_text(skel) == "image is a segment map. Generate a realistic picture of caption on top of it."
    assert embedding_text("Apply the style of {image2} to {image1}.") == "Apply the style of image2 to image1."
    cands = RuleParaphraser().candidates(skel, np.random.default_rng(0), 8)
    assert cands and all(c.count("{caption}") == 1 and indicators(c) == [""] for c in cands)
    assert (
        meaning_problem("Segmentation-guided Generation", skel, cands[0].replace("{caption}", "a dog"))
        == "caption_changed"
    )

    batch = _batch(n=6, task="Segmentation-guided Generation")
    stage = RewriteInstructions(RewriteConfig(n=3))
    stage.setup()
    stage(batch)
    rewritten = 0
    for s in batch.samples:
        rec = s.turns[0].instruction_record
        cap = s.current.caption
        if s.current.instruction_method == "rule_rewrite" and cap in rec.source:
            rewritten += 1
            assert all(cap in a and "{caption}" not in a for a in rec.alternates), rec
    assert rewritten >= 1
    skipped = batch.stats["rewrite_instructions"].skipped
    assert set(skipped) <= {
        "rejected_rewrite:too_close",
        "rejected_rewrite:not_distinct",
        "rejected_rewrite:meaning_drift",
        "kept_template:no_distinct_rewrite",
    }


def test_the_choice_prefers_a_wording_the_partition_has_not_used():
    # the same template for every sample: without the preference, picks collide; with it, the kept rewrites spread
    batch = _batch(n=6, task="Image Colorization")
    for s in batch.samples:
        s.current.instruction, s.current.caption = "Colorize {image} with natural tones.", ""
    stage = RewriteInstructions(RewriteConfig(n=3))
    stage.setup()
    stage(batch)
    chosen = [s.current.instruction for s in batch.samples if s.current.instruction_method == "rule_rewrite"]
    kept = {a for s in batch.samples for a in s.turns[0].instruction_record.alternates}
    assert len(chosen) >= 4
    assert len(set(chosen)) == min(len(chosen), len(kept))
