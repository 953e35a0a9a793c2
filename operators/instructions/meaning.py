"""Does a rewrite still say what its template said? Same indicators (as a multiset), the task's key terms kept,
and close enough in embedding space; and is it new? Far enough from the template and every earlier rewrite."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from datagen.schema import INDICATOR_RE, indicators
from operators.instructions.paraphrase import CAPTION_SLOT
from operators.instructions.template_bank import TASK_TERMS
from operators.instructions.text import MAX_CHARS


def meaning_problem(task: str, source: str, candidate: str, keep: tuple[str, ...] = ()) -> str | None:
    """The text-level checks (the embedding checks need vectors; see select_rewrites). `keep`: words the source names
    that a rewrite must keep (the object or style a synthesized edit changes)."""
    if not candidate.strip():
        return "empty"
    if Counter(indicators(candidate)) != Counter(indicators(source)):
        return "indicators_changed"
    bare = INDICATOR_RE.sub("", candidate)
    if CAPTION_SLOT in source:  # a rule rewrite around the caption (rewrites.skeleton): the slot must stay, once
        if candidate.count(CAPTION_SLOT) != source.count(CAPTION_SLOT):
            return "caption_changed"
        bare = bare.replace(CAPTION_SLOT, "")
    if "{" in bare or "}" in bare:
        return "stray_braces"
    if len(candidate) > MAX_CHARS or len(candidate.split()) > 3 * len(source.split()) + 10:
        return "too_long"
    terms = TASK_TERMS.get(task)
    if terms and re.search(terms, source, re.IGNORECASE) and not re.search(terms, candidate, re.IGNORECASE):
        return "task_terms_lost"
    for words in keep:
        if words and words.lower() in source.lower() and words.lower() not in candidate.lower():
            return "named_object_lost"
    return None


@dataclass
class Selection:
    kept: list[str]
    rejected: dict[str, int]  # reason -> count


def select_rewrites(
    task: str,
    source: str,
    candidates: list[str],
    vectors: np.ndarray,
    n: int,
    max_similarity: float,
    min_similarity: float,
    keep: tuple[str, ...] = (),
) -> Selection:
    """Greedy, in candidate order: keep a candidate when it passes the text checks, is at least min_similarity
    to the source (meaning kept) and below max_similarity to the source and to every rewrite kept so far.
    vectors: unit rows, the source first, then one per candidate."""
    kept: list[str] = []
    kept_vecs = [vectors[0]]
    rejected: Counter = Counter()
    for cand, vec in zip(candidates, vectors[1:]):
        if len(kept) >= n:
            break
        why = meaning_problem(task, source, cand, keep)
        if why is None:
            sims = np.stack(kept_vecs) @ vec
            if float(sims[0]) < min_similarity:
                why = "meaning_drift"
            elif float(sims.max()) >= max_similarity:
                why = "not_distinct"
        if why:
            rejected[why] += 1
            continue
        kept.append(cand)
        kept_vecs.append(vec)
    return Selection(kept, dict(rejected))


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\{image\d?\}|[a-z0-9']+", text.lower()))


def word_distance(a: str, b: str) -> float:
    """Jaccard distance of the two texts' word sets (indicators count as words)."""
    ta, tb = _tokens(a), _tokens(b)
    return 1.0 - len(ta & tb) / max(1, len(ta | tb))


def lexical_order(source: str, candidates: list[str]) -> list[str]:
    """Candidates reordered so that each next one shares the fewest words with the source and those before it
    (greedy max-min Jaccard distance). Embedding is the expensive check: trying the lexically most different
    candidates first means fewer of them need embedding before n distinct rewrites are found."""
    seen = [_tokens(source)]
    toks = {c: _tokens(c) for c in candidates}
    left = list(candidates)
    out: list[str] = []
    while left:

        def closeness(c: str) -> float:
            return max(len(toks[c] & s) / max(1, len(toks[c] | s)) for s in seen)

        best = min(left, key=closeness)  # ties keep the generator's (seeded) order
        out.append(best)
        seen.append(toks[best])
        left.remove(best)
    return out
