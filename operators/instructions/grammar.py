"""A tiny phrase grammar for instruction templates: `[a|b|c]` is a choice, `[a|]` an optional part, and
choices nest. One pattern line stands for the product of its choices; the n-th phrasing is decoded directly."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class _Choice:
    options: tuple["_Seq", ...]


_Seq = tuple  # a sequence of str and _Choice parts


def _parse(text: str, pos: int = 0, depth: int = 0) -> tuple[list[_Seq], int]:
    """Parse from `pos` until the closing ']' of this depth; returns the '|' separated alternatives."""
    alternatives: list[_Seq] = []
    parts: list = []
    buf = ""
    while pos < len(text):
        ch = text[pos]
        if ch == "[":
            if buf:
                parts.append(buf)
                buf = ""
            inner, pos = _parse(text, pos + 1, depth + 1)
            parts.append(_Choice(tuple(inner)))
            continue
        if ch == "]":
            if depth == 0:
                raise ValueError(f"unbalanced ']' at {pos} in {text!r}")
            if buf:
                parts.append(buf)
            alternatives.append(tuple(parts))
            return alternatives, pos + 1
        if ch == "|" and depth == 0:
            raise ValueError(f"'|' outside brackets at {pos} in {text!r}")
        if ch == "|":
            if buf:
                parts.append(buf)
            alternatives.append(tuple(parts))
            parts, buf = [], ""
            pos += 1
            continue
        buf += ch
        pos += 1
    if depth > 0:
        raise ValueError(f"unbalanced '[' in {text!r}")
    if buf:
        parts.append(buf)
    alternatives.append(tuple(parts))
    return alternatives, pos


def _count(seq: _Seq) -> int:
    n = 1
    for part in seq:
        if isinstance(part, _Choice):
            n *= sum(_count(o) for o in part.options)
    return n


def _nth(seq: _Seq, index: int) -> str:
    """Mixed-radix decoding: the index picks one option per choice, left to right."""
    out = []
    for part in seq:
        if isinstance(part, str):
            out.append(part)
            continue
        sizes = [_count(o) for o in part.options]
        total = sum(sizes)
        local, index = index % total, index // total
        for opt, size in zip(part.options, sizes):
            if local < size:
                out.append(_nth(opt, local))
                break
            local -= size
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    source: str
    seq: _Seq
    size: int

    def phrasing(self, index: int) -> str:
        """The `index`-th phrasing (taken modulo the number of phrasings), with whitespace tidied."""
        return tidy(_nth(self.seq, index % self.size))

    def all(self) -> list[str]:
        return [self.phrasing(i) for i in range(self.size)]


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    alternatives, _ = _parse(text)
    if len(alternatives) != 1:
        raise ValueError(f"'|' outside brackets in pattern {text!r}")
    seq = alternatives[0]
    return Pattern(text, seq, _count(seq))


def tidy(text: str) -> str:
    """Collapse the double spaces and space-before-punctuation that optional parts leave behind."""
    text = " ".join(text.split())
    for p in (".", ",", ";", ":", "?", "!"):
        text = text.replace(" " + p, p)
    return text
