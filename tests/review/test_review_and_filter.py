"""Reviewers: the contact sheet renders in headless Chromium with every image loaded; marks and rules exported
from it drop samples through `datagen filter`, leaving a folder that validates."""

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datagen.review.browser import dump_dom, screenshot
from datagen.review.filter import filter_dir, load_marks
from datagen.review.html import highlight
from datagen.shards.reader import read_index
from datagen.shards.validate import validate_dir
from pipelines import load_recipe, run


@pytest.fixture
def shards(tmp_path, photo_dir):
    out = tmp_path / "out"
    run(
        load_recipe(
            "tests/tiny_recipe.yaml",
            [
                f"input.path={photo_dir}",
                f"output.dir={out}",
                "runtime.executor=local",
                "runtime.progress=false",
                "input.max_side=96",
                "output.samples_per_shard=10",
            ],
        )
    )
    return out


def test_indicators_are_highlighted_and_text_escaped():
    assert highlight("Mix {image1} & <b>{image}</b>") == (
        'Mix <mark class="ind">{image1}</mark> &amp; &lt;b&gt;<mark class="ind">{image}</mark>&lt;/b&gt;'
    )


def test_review_page_renders_in_chromium_with_every_image(shards, tmp_path):
    page = tmp_path / "review.html"
    res = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "review", str(shards), "--out", str(page), "--per-task", "3"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    dom = dump_dom(page)
    m = re.search(r'id="status" data-loaded="(\d+)" data-total="(\d+)"', dom)
    assert m, "the page's load script did not run"
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total > 0 and loaded == total
    tasks = set(read_index(shards).column("task").to_pylist())
    for t in tasks:
        assert f">{t}</h2>" in dom or f">{t} (multi-turn)</h2>" in dom
    png = screenshot(page, tmp_path / "review.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1280 and float(np.std(img)) > 10  # not a blank page


def test_filter_drops_marked_samples_and_rules(shards, tmp_path):
    index = read_index(shards).to_pylist()
    victim = index[0]["key"]
    marks = tmp_path / "marks.json"
    marks.write_text(
        json.dumps(
            {
                "dataset": str(shards),
                "marks": [
                    {"key": victim, "task": index[0]["task"], "operator": index[0]["operator"], "reason": "blurry"},
                    {"rule": {"operator": "canny"}, "reason": "edges too noisy"},
                ],
            }
        )
    )
    keys, rules = load_marks(marks)
    before = {r["key"] for r in index}
    out = tmp_path / "filtered"
    report = filter_dir(shards, keys, rules, out)
    after = read_index(out).to_pylist()
    assert victim not in {r["key"] for r in after}
    assert not any(r["operator"] == "canny" for r in after)
    assert report["dropped"] == len(before) - len(after) and report["kept"] == len(after)
    assert validate_dir(out)[1] == []
    # in place, by CLI rule
    res = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "filter", str(shards), "--rule", "task=Grayscale"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "Grayscale" not in set(read_index(shards).column("task").to_pylist())
    assert validate_dir(shards)[1] == []
