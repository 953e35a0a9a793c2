"""Scores through a whole run: every sample (CUs, LCUs, repainting) carries pixel scores and an open_nsfw probability
in its JSON and as score_* index columns; a recipe threshold drops exactly the samples beyond it and counts them by
reason in run.json and the report; keep_below_threshold keeps and marks them; `datagen filter --rule scores.X<V`
drops the same samples from a finished output; the review page shows every score and sorts by one in Chromium."""

import json
import re
import subprocess
import sys

import pytest

from datagen import paths, schema
from datagen.config import ConfigError
from datagen.review.browser import dump_dom
from datagen.shards.reader import iter_samples, read_index, shard_paths
from datagen.shards.validate import validate_dir
from datagen.trainer.loader import list_shards
from pipelines import load_recipe, run

CUT = 0.55  # between the SSIMs of the demo's conditions: some samples on each side


def _run(out, photo_dir, *extra):
    return run(
        load_recipe(
            "tests/tiny_recipe.yaml",
            [
                f"input.path={photo_dir}",
                f"output.dir={out}",
                "input.max_side=96",
                "input.images_per_partition=3",
                "operators.repainting={}",
                "operators.pixel_scores={}",
                "operators.nsfw_score={}",
                *extra,
            ],
        )
    )


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("scored")
    photos = root / "photos"
    photos.mkdir()
    import cv2

    from datagen.ingest.listing import builtin_photos

    for _, p in builtin_photos()[:4]:
        img = cv2.imread(str(p))
        s = 160 / max(img.shape[:2])
        cv2.imwrite(
            str(photos / (p.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".png")),
            cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA),
        )
    out = root / "all"
    summary = _run(out, photos)
    return photos, out, summary


def test_every_sample_carries_pixel_and_nsfw_scores_in_json_and_index(scored):
    _, out, summary = scored
    samples = list(iter_samples(out))
    assert len(samples) == summary["samples"] > 0 and summary["quarantined"] == 0
    assert {s.kind for s in samples} == {"cu", "lcu"} and "Inpainting" in {s.task for s in samples}
    index = {r["key"]: r for r in read_index(out).to_pylist()}
    for s in samples:
        sc = s.provenance.scores
        assert {"pixel_l1", "pixel_ssim", "nsfw"} <= set(sc), (s.task, sc)
        assert sc["nsfw"] < 0.2  # the shipped photos are safe
        row = index[s.key]
        for name, v in sc.items():
            assert abs(row[schema.score_column(name)] - v) < 1e-5
        if s.current.inputs[0].mask is not None:
            assert {"pixel_l1_inside", "pixel_l1_outside", "mask_area"} <= set(sc)
        else:
            assert row["score_mask_area"] is None
    assert validate_dir(out)[1] == []


def test_threshold_drops_exactly_the_samples_below_and_counts_them(scored, tmp_path):
    photos, full, _ = scored
    before = list(iter_samples(full))
    below = {s.key for s in before if s.provenance.scores["pixel_ssim"] < CUT}
    assert 0 < len(below) < len(before)
    rule = {"thresholds": {"*": {"pixel_ssim": {"min": CUT}}}, "use_defaults": False}
    out = tmp_path / "filtered"
    summary = _run(out, photos, f"operators.quality_filter={json.dumps(rule)}")
    kept = {s.key for s in iter_samples(out)}

    # the filter is a recipe change, so keys differ: compare by what made each sample
    def ident(s):
        return (tuple(s.provenance.source_ids), s.provenance.operator, s.task, s.kind, s.provenance.variant)

    below_ids = {ident(s) for s in before if s.key in below}
    kept_ids = {ident(s) for s in iter_samples(out)}
    assert kept_ids == {ident(s) for s in before} - below_ids
    skipped = summary["stages"]["quality_filter"]["skipped"]
    assert skipped == {"dropped samples": len(below), f"dropped: pixel_ssim<{CUT:g}": len(below)}
    assert summary["samples"] == len(kept) == len(before) - len(below)
    # the dropped samples are not lost: OUT/rejects/ holds exactly them, with every score and the failed rule, in
    # shards of the same contract that no reader of OUT's shards (index, samples, trainer, Hugging Face) sees
    rejects = list(iter_samples(out / paths.REJECTS_DIR))
    assert {ident(s) for s in rejects} == below_ids and len(rejects) == len(below) == summary["rejected"]
    assert all(s.rejected.reasons == [f"pixel_ssim<{CUT:g}"] for s in rejects)
    assert all({"pixel_l1", "pixel_ssim", "nsfw"} <= set(s.provenance.scores) for s in rejects)
    reject_rows = read_index(out / paths.REJECTS_DIR).to_pylist()
    assert {r["reason"] for r in reject_rows} == {f"pixel_ssim<{CUT:g}"}
    assert {r["rejected_by"] for r in reject_rows} == {"quality_filter"}
    reject_keys = {r["key"] for r in reject_rows}
    assert not reject_keys & kept and not reject_keys & {r["key"] for r in read_index(out).to_pylist()}
    assert not [url for shard in list_shards(str(out)) for url in (shard.url, shard.index_url) if "/rejects/" in url]
    assert not [p for p in shard_paths(out) if paths.REJECTS_DIR in p.parts]  # what load_hf_dataset reads
    n, problems = validate_dir(out)
    assert problems == [] and n == summary["shards"] + summary["reject_shards"]
    # the funnel: per task, made = written + dropped, written as in the shards, dropped as in the rejects
    funnel = summary["funnel"]
    assert all(f["made"] == f["written"] + sum(f["dropped"].values()) for f in funnel.values())
    assert {t: f["written"] for t, f in funnel.items() if f["written"]} == summary["tasks"]
    assert sum(sum(f["dropped"].values()) for f in funnel.values()) == len(rejects)
    assert sum(f["made"] for f in funnel.values()) == len(before)
    assert "<h2>funnel</h2>" in (out / "report.html").read_text() and (out / "report_funnel.png").stat().st_size > 1000
    report = (out / "report.html").read_text()
    assert f"pixel_ssim&lt;{CUT:g}" in report and "quality scores per task" in report
    assert (out / "report_scores.png").stat().st_size > 1000

    # keep_below_threshold: nothing dropped, the failing ones marked and countable by datagen filter
    rule["keep_below_threshold"] = True
    marked = tmp_path / "marked"
    summary = _run(marked, photos, f"operators.quality_filter={json.dumps(rule)}")
    assert summary["samples"] == len(before)
    rows = read_index(marked).to_pylist()
    assert sum(r["score_failed_thresholds"] > 0 for r in rows) == len(below)
    assert summary["stages"]["quality_filter"]["skipped"] == {f"marked: pixel_ssim<{CUT:g}": len(below)}


def test_datagen_filter_score_rule_drops_the_same_samples(scored, tmp_path):
    _, full, _ = scored
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(full, out)
    below = {r["key"] for r in read_index(out).to_pylist() if r["score_pixel_ssim"] < CUT}
    res = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "filter", str(out), "--rule", f"scores.pixel_ssim<{CUT}"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert f"dropped {len(below)} samples" in res.stdout
    left = read_index(out).to_pylist()
    assert {r["key"] for r in left} == {r["key"] for r in read_index(full).to_pylist()} - below
    assert all(r["score_pixel_ssim"] >= CUT for r in left)
    assert validate_dir(out)[1] == []
    bad = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "filter", str(out), "--rule", "scores.sharpness<3"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode != 0
        and "unknown score 'sharpness'" in bad.stdout + bad.stderr
        and "pixel_ssim" in bad.stdout + bad.stderr
    )


def test_bad_threshold_config_names_the_key():
    with pytest.raises(ConfigError, match=r"unknown score\(s\) \['ssim'\]"):
        load_recipe(
            "tests/tiny_recipe.yaml", ['operators.quality_filter={"thresholds": {"*": {"ssim": {"min": 0.5}}}}']
        )
    with pytest.raises(ConfigError, match="unknown key 'Teleport'"):
        load_recipe(
            "tests/tiny_recipe.yaml", ['operators.quality_filter={"thresholds": {"Teleport": {"nsfw": {"max": 0.5}}}}']
        )


def test_review_page_shows_and_sorts_by_scores(scored, tmp_path):
    _, out, _ = scored
    page = tmp_path / "review.html"
    res = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "review", str(out), "--out", str(page), "--per-task", "6"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    for spec in ("pixel_ssim:asc", "pixel_ssim:desc", "nsfw:desc"):
        name, direction = spec.split(":")
        dom = dump_dom(page, fragment=f"sort={spec}")
        assert f'data-sorted="{spec}"' in dom, "the page's sort script did not run"
        strata = dom.split('<div class="stratum">')[1:]
        assert strata
        longest = 0
        for stratum in strata:
            values = [float(v) for v in re.findall(rf'class="score" data-name="{name}" data-value="([^"]+)"', stratum)]
            assert values == sorted(values, reverse=direction == "desc"), (spec, values)
            longest = max(longest, len(set(values)))
        assert longest >= 3  # the order was really decided by the score
    dom = dump_dom(page)
    chips = re.findall(
        r'class="score" data-name="(\w+)" data-value="[^"]+" title="[^"]*" style="background:([^"]+)"', dom
    )
    assert {n for n, _ in chips} >= {"pixel_l1", "pixel_ssim", "nsfw", "pixel_ssim_outside"}
    colours = {}
    for n, c in chips:
        colours.setdefault(n, set()).add(c)
    assert all(c.startswith("hsl(") and int(c[4:].split(",")[0]) > 100 for c in colours["nsfw"])  # safe photos: green
    assert colours["pixel_l1"] == {"#e4e4e4"}  # how much an edit changed is neither good nor bad in itself
    assert '<option value="pixel_ssim:asc">' in dom
    # the sort a reviewer asks for on the command line is the page's order until the menu changes it
    res = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "review", str(out), "--out", str(page), "--sort", "nsfw:desc"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    dom = dump_dom(page)
    assert 'data-sorted="nsfw:desc"' in dom
    for stratum in dom.split('<div class="stratum">')[1:]:
        values = [float(v) for v in re.findall(r'class="score" data-name="nsfw" data-value="([^"]+)"', stratum)]
        assert values == sorted(values, reverse=True)
    bad = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "review", str(out), "--out", str(page), "--sort", "beauty:up"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "NAME:asc or NAME:desc" in bad.stdout + bad.stderr


def test_scoring_sits_after_the_samples_are_finished_and_before_the_mix():
    from datagen.operator import Role
    from pipelines.images import JOB as IMAGES
    from pipelines.pairing import JOB as PAIRS

    r = load_recipe(
        "configs/demo.yaml", ["instructions.methods=[template]", 'operators.task_mix={"weights": {"Grayscale": 1}}']
    )
    names = [op.name for op in IMAGES.stages(r)]
    assert (
        names.index("lcu_chains")
        < names.index("pixel_scores")
        < names.index("nsfw_score")
        < names.index("quality_filter")
        < names.index("task_mix")
    )
    pairs = PAIRS.stages(r)
    assert [op.role for op in pairs[-3:]] == [Role.SCORE, Role.SCORE, Role.FILTER]


def test_default_thresholds_drop_unchanged_targets(scored, tmp_path):
    """The peers' defaults plus datagen's own: grayscale of a photo that already is gray changes nothing and goes."""
    photos, full, _ = scored
    unchanged = [s for s in iter_samples(full) if s.provenance.scores["pixel_l1"] < 0.001]
    assert unchanged and {s.task for s in unchanged} <= {"Grayscale", "Image Colorization", "Grayscale (multi-turn)"}
    out = tmp_path / "defaults"
    summary = _run(out, photos, "operators.quality_filter={}")
    from collections import Counter

    from operators.scoring.quality_filter import DEFAULT_THRESHOLDS, failures, thresholds_for

    failed = {
        s.key: failures(s.provenance.scores, thresholds_for(s.task, [DEFAULT_THRESHOLDS])) for s in iter_samples(full)
    }
    reasons = Counter(r for rs in failed.values() for r in rs)
    assert reasons["pixel_l1<0.001"] == len(unchanged)
    skipped = summary["stages"]["quality_filter"]["skipped"]
    assert skipped == {
        "dropped samples": sum(1 for rs in failed.values() if rs),
        **{f"dropped: {r}": n for r, n in reasons.items()},
    }
    assert summary["samples"] == sum(1 for rs in failed.values() if not rs)
    assert all(s.provenance.scores["pixel_l1"] >= 0.001 for s in iter_samples(out))
