"""The documentation a newcomer walks (issue 21): README.md stays a short front page, and every relative link in it,
in docs/**/*.md and in bench/RESULTS.md leads somewhere. A link to a file or folder must exist relative to the page;
a #fragment into a Markdown page must name one of its headings, slugged as GitHub slugs them (lower case, markup and
punctuation dropped, spaces to hyphens, repeated headings numbered -1, -2, ...). No network: web and mail links are
not checked."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    results = ROOT / "bench" / "RESULTS.md"
    if results.exists():
        found.append(results)
    return found


FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# [text](target) and ![alt](target); link text may hold one level of brackets; the target may carry a "title"
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+[\"'(].*?)?\s*\)"
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_ANCHOR = re.compile(r"<a\s+[^>]*?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(text: str) -> str:
    """The page without fenced code blocks and HTML comments, inline code spans reduced to a placeholder word:
    what is left is where links and headings live."""
    text = HTML_COMMENT.sub("", text)
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return INLINE_CODE.sub("code", "\n".join(out))


def links(text: str) -> list[str]:
    body = prose(text)
    found = [m.group(1) for m in INLINE_LINK.finditer(body)] + [m.group(1) for m in REFERENCE_DEF.finditer(body)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in found]


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (links reduced to their text, code and emphasis marks
    dropped), lower case, everything but letters, digits, '_', '-' and spaces removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    out = set(HTML_ANCHOR.findall(text))
    body = HTML_COMMENT.sub("", text)
    fenced = False
    for line in body.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in links(page.read_text(encoding="utf-8")):
        if not target or is_external(target):
            continue
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            bad.append(f"{target}: no such file or folder")
            continue
        if fragment and dest.is_file() and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            bad.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    return bad


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_readme_is_a_short_front_page():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_every_docs_page_is_reachable_from_the_readme():
    """A page nobody links to is a page nobody finds: follow relative links from the README through the docs."""
    reachable, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reachable:
            continue
        reachable.add(page)
        for target in links(page.read_text(encoding="utf-8")):
            path_part = target.partition("#")[0]
            if not path_part or is_external(target):
                continue
            dest = (page.parent / unquote(path_part)).resolve()
            if dest.is_file() and dest.suffix == ".md":
                todo.append(dest)
    orphans = [rel(p) for p in pages() if p.resolve() not in reachable]
    assert orphans == []


# The checker itself, on made-up pages: it must see what a reader would click, and nothing else.
def test_the_checker_finds_broken_links_and_anchors_and_skips_code(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text(
        "# Other page\n\n## Step 2: `run` it (fast)\n\n## Step 2: run it (fast)\n"
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## A heading\n\n"
        "[ok](other.md) [ok](other.md#step-2-run-it-fast) [ok](other.md#step-2-run-it-fast-1) [ok](#a-heading)\n"
        '[ok](./) [web](https://example.com/x.md) [mail](mailto:a@b.c) ![img](other.md "title")\n'
        "[missing](nothing.md) [bad anchor](other.md#nope) [bad own anchor](#nope)\n"
        "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md)\n# not a heading\n```\n"
        "<!-- [not a link](nowhere.md) -->\n\n[ref]: gone.md\n"
    )
    assert broken_links(page) == [
        "nothing.md: no such file or folder",
        "other.md#nope: no heading #nope in docs/other.md",
        "#nope: no heading #nope in docs/page.md",
        "gone.md: no such file or folder",
    ]


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("Install: which extra where", "install-which-extra-where"),
        (
            "The pairs job's global step at scale: where the memory is",
            "the-pairs-jobs-global-step-at-scale-where-the-memory-is",
        ),
        ("Training on the shards: `datagen train`", "training-on-the-shards-datagen-train"),
        ("The data contract (datagen/schema.py)", "the-data-contract-datagenschemapy"),
        ("3. Execute", "3-execute"),
        ("K-means + two-pass union-find", "k-means--two-pass-union-find"),
        ("run.json and the **summary**", "runjson-and-the-summary"),
        ("A [linked](x.md) heading", "a-linked-heading"),
        ("snake_case_name stays", "snake_case_name-stays"),
    ],
)
def test_slugs_follow_github(heading, expected):
    assert slug(heading) == expected
