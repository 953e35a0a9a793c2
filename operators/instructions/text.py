"""Instruction text hygiene: clean captions before they go into templates, renumber indicators for later turns
of a chain, and turn a model's free-form answer into an instruction, or say why it is unusable."""

from __future__ import annotations

import re

from datagen.schema import INDICATOR_RE, indicator_problems, indicators

_TAG_RE = re.compile(r"<[^>]{0,40}>")
# forms models write instead of our indicators: <image1>, [image 1], {Image-1}, {{image1}}, <image>
_REF_RE = re.compile(r"(?:\{\{|\{|<|\[)\s*image\s*[-_ ]?(\d?)\s*(?:\}\}|\}|>|\])", re.IGNORECASE)
# "Image-1" / "image 2" written out, as our prompts name the images
_NAMED_RE = re.compile(r"\bimage[- ](\d)\b", re.IGNORECASE)
_REFUSAL_RE = re.compile(r"\b(i'?m sorry|i cannot|i can't|as an ai|unable to|i am unable)\b", re.IGNORECASE)
_PREFIX_RE = re.compile(r"^\s*(?:instruction|answer|edit instruction|rewrite|output)\s*[:\-]\s*", re.IGNORECASE)
_ENUM_RE = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,2}[.):])\s*")

MAX_WORDS = 80
MAX_CHARS = 500


def clean_caption(caption: str, max_words: int = 32) -> str:
    """A caption fit to sit inside a sentence: no braces (they would read as indicators), no tags, no final
    period, lower-case first letter unless the first word is an acronym or a name-like mixed case word."""
    text = _TAG_RE.sub(" ", caption or "").replace("{", " ").replace("}", " ")
    text = " ".join(text.split()).strip(" .;,:!")
    if not text:
        return ""
    words = text.split(" ")
    if len(words) > max_words:
        words = words[:max_words]
    first = words[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        words[0] = first[0].lower() + first[1:]
    elif len(first) == 1 and first in "A":
        words[0] = "a"
    return " ".join(words)


def sentence_case(text: str) -> str:
    """Upper-case the first letter (templates may start with an optional word that was left out)."""
    for i, ch in enumerate(text):
        if ch == "{":
            return text  # starts with an indicator: leave as is
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def shift_indicators(text: str, offset: int) -> str:
    """Numbered indicators are relative to a turn's own inputs; in a chain they count the history's images too."""
    if offset <= 0:
        return text

    def sub(m: re.Match) -> str:
        if m.group(1) == "":
            return m.group(0)
        n = int(m.group(1)) + offset
        if n > 9:
            raise ValueError(f"indicator {{image{n}}} would exceed ACE's nine images")
        return "{image%d}" % n

    return INDICATOR_RE.sub(sub, text)


def normalize_answer(text: str, n_inputs: int) -> str:
    """A model answer as an instruction: first meaningful line, no quotes or list markers, image references
    written as our indicators (a single input is `{image}`, as in ACE)."""
    text = (text or "").strip()
    text = re.sub(r"^```[a-zA-Z]*\s*|```\s*$", "", text).strip()
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX_RE.sub("", line)
    line = _ENUM_RE.sub("", line).strip().strip("\"'`\u201c\u201d").strip()
    line = _REF_RE.sub(lambda m: "{image%s}" % m.group(1), line)
    line = _NAMED_RE.sub(lambda m: "{image%s}" % m.group(1), line)
    if n_inputs == 1:
        line = line.replace("{image1}", "{image}")
    return " ".join(line.split())


def unusable_reason(text: str, n_inputs: int) -> str | None:
    """Why an instruction cannot be used for a turn with `n_inputs` visible inputs; None when it can."""
    if not text:
        return "empty_answer"
    if _REFUSAL_RE.search(text):
        return "refusal"
    words = len(text.split())
    if words < 3:
        return "too_short"
    if words > MAX_WORDS or len(text) > MAX_CHARS:
        return "too_long"
    if indicator_problems(text, n_inputs):
        return "bad_indicator"
    if n_inputs >= 1 and not indicators(text):
        return "no_indicator"
    if n_inputs == 0 and indicators(text):
        return "bad_indicator"
    if "{" in INDICATOR_RE.sub("", text) or "}" in INDICATOR_RE.sub("", text):
        return "leftover_placeholder"
    return None
