"""The embedded-default rewriter: a classical rule-based paraphraser (no weights). It re-realises an instruction
through a grammar of interchangeable verbs and objects, request frames ("Could you ...?") and fronting of the
image phrase ("For {image}, ..."); indicators are protected and never touched. Candidates are filtered later."""

from __future__ import annotations

import re

import numpy as np

from datagen.schema import INDICATOR_RE
from operators.instructions.grammar import tidy
from operators.instructions.text import sentence_case

# Interchangeable words and phrases: meaning-preserving in the contexts the template bank uses them.
SYNONYMS: list[list[str]] = [
    ["generate", "create", "produce", "render", "synthesize"],
    ["turn", "convert", "transform"],
    ["extract", "compute", "derive", "obtain"],
    ["give me", "show me", "provide", "return"],
    ["photo", "picture", "photograph"],
    ["realistic", "lifelike", "photorealistic", "true-to-life"],
    ["remove", "erase", "delete"],
    ["sharp", "crisp"],
    ["colour", "color"],
    ["colours", "colors"],
    ["colorize", "colourize"],
    ["grayscale", "greyscale"],
    ["black and white", "black-and-white"],
    ["detect", "find", "identify"],
    ["estimate", "predict", "infer"],
    ["masked", "marked"],
    ["region", "area"],
    ["seamlessly", "smoothly", "without visible seams"],
    ["following", "guided by", "consistent with"],
    ["edit", "modify", "alter"],
    ["scene", "setting"],
    ["completely", "fully", "entirely"],
    ["version", "rendition"],
]

# Request frames around an imperative clause `s` (first letter lower-case, no final punctuation).
FRAMES = [
    "Please {s}.",
    "{S}, please.",
    "Could you {s}?",
    "Can you {s}?",
    "Would you {s}?",
    "I'd like you to {s}.",
    "I need you to {s}.",
    "I want you to {s}.",
    "Kindly {s}.",
    "Go ahead and {s}.",
    "Your task: {s}.",
    "Try to {s}.",
    "Help me {s}.",
    "Let's {s}.",
    "{S}, if you can.",
    "{S} for me.",
    "Task: {s}.",
]
# Frames around a bare noun phrase ("A photo of ...", Text-to-Image style).
NP_FRAMES = [
    "Generate {np}.",
    "Show me {np}.",
    "I'd like {np}.",
    "Make {np}.",
    "Create {np}.",
    "Render {np}.",
    "I want {np}.",
]
FRONTINGS = [
    "For {img}, {s}.",
    "Taking {img}, {s}.",
    "Starting from {img}, {s}.",
    "Given {img}, {s}.",
    "With {img} as input, {s}.",
]

# Verbs that open the bank's imperative lines: a frame only wraps a clause that starts with one of them.
IMPERATIVE = set(
    """extract detect compute run find turn convert transform give show produce get output generate create render
    synthesize use take treat paint draw make remove strip drain desaturate decolorize decolourize colorize colourize
    add bring restore fill apply put pixelate mosaic censor cover obscure hide mask return undo recover reconstruct
    de-pixelate unpixelate demosaic reveal degrade damage corrupt lower reduce ruin repair fix enhance clean improve
    increase sharpen complete repaint inpaint regenerate redraw extend expand enlarge outpaint continue zoom widen edit
    change alter modify adjust retouch keep preserve restyle re-render reimagine transfer switch insert place erase
    delete clear update rework combine merge segment partition estimate predict trace outline simplify doodle sketch
    scribble visualize display vary perform derive obtain identify infer provide go recolour recolor guess blur unblock
    depixelate replace denoise deblur reverse patch finish copy swap exchange substitute move decompose split separate
    break isolate cut lift hand detach pull peel composite paste fuse blend join layer drop set reassemble rebuild
    recompose stack depict""".split()
)
CAPTION_SLOT = "{caption}"  # where a template's caption stood: rewritten around, never into
_SLOT = "\x02"  # the caption slot while rules run: no rule matches it, and it is not an image to front
_FRONT_RE = re.compile(r"^(?P<head>.+\S) (?:of|in|from|for|on|to|onto|into) (?P<img>\x00\d\x00)$")
_PLEASE_RE = re.compile(r"^please,? |,? please(?=[.?!]*$)", re.IGNORECASE)
# every synonym in one pattern (one regex pass per rewrite, not one per group), longest first
_GROUP_OF = {w.lower(): g for g in SYNONYMS for w in g}
_SYNONYM_RE = re.compile(
    # not inside hyphenated words ("re-render" is not "render")
    r"(?<![-\w])(" + "|".join(re.escape(w) for w in sorted(_GROUP_OF, key=len, reverse=True)) + r")(?![-\w])",
    re.IGNORECASE,
)


SUBST = "\x01"  # marks a substituted word until articles agree with it
_A_AN_RE = re.compile(r"\b([Aa])n? \x01(?=(\w))")


def _articles(text: str) -> str:
    """a/an agreement where a substitution changed the next word ("a region" -> "an area"); words that came
    from the input (captions: "a uniform") are left as they were."""
    text = _A_AN_RE.sub(lambda m: m.group(1) + ("n" if m.group(2).lower() in "aeiou" else "") + " ", text)
    return text.replace(SUBST, "")


def _lower_first(s: str) -> str:
    first = s.split(" ", 1)[0]
    if first in ("I", "I'd") or (len(first) > 1 and first[1:2].isupper()):
        return s
    return s[:1].lower() + s[1:]


def _match_case(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


class RuleParaphraser:
    """Candidates for rewrites of one instruction; deterministic for a given generator state."""

    name = "rule_based"

    def _protect(self, text: str) -> tuple[str, list[str]]:
        refs: list[str] = []

        def sub(m: re.Match) -> str:
            refs.append(m.group(0))
            return f"\x00{len(refs) - 1}\x00"

        return INDICATOR_RE.sub(sub, text), refs

    @staticmethod
    def _restore(text: str, refs: list[str]) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: refs[int(m.group(1))], text)

    def _substitute(self, text: str, rng: np.random.Generator, p: float) -> str:
        def sub(m: re.Match) -> str:
            if rng.random() >= p:
                return m.group(0)
            others = [w for w in _GROUP_OF[m.group(0).lower()] if w.lower() != m.group(0).lower()]
            return SUBST + _match_case(others[int(rng.integers(len(others)))], m.group(0))

        return _articles(_SYNONYM_RE.sub(sub, text))

    def _frame(self, clause: str, rng: np.random.Generator) -> str:
        s = _lower_first(clause)
        # frames that would read wrong around this clause: "Let's give me ...", "... for me for me."
        frames = [
            f
            for f in FRAMES
            if not (f in ("Let's {s}.", "Help me {s}.") and re.match(r"\w+ me\b", s))
            and not (f == "{S} for me." and s.rstrip().endswith("for me"))
        ]
        frame = frames[int(rng.integers(len(frames)))]
        return frame.replace("{S}", sentence_case(s)).replace("{s}", s)

    def _rewrite(self, protected: str, rng: np.random.Generator) -> str:
        text = self._substitute(protected, rng, p=0.8)
        body = _PLEASE_RE.sub("", text).rstrip(" .!?,")  # frames add their own politeness
        end = "?" if text.rstrip().endswith("?") else "."
        first = body.split(" ", 1)[0].lower().strip(",")
        n_refs = len(re.findall(r"\x00\d\x00", body))
        if first in IMPERATIVE:
            m = _FRONT_RE.match(body)
            if m and n_refs == 1 and rng.random() < 0.4:
                front = FRONTINGS[int(rng.integers(len(FRONTINGS)))]
                return front.replace("{img}", m.group("img")).replace("{s}", _lower_first(m.group("head")))
            if rng.random() < 0.9 and end == ".":
                return self._frame(body, rng)
            return body + end
        if first in ("a", "an", "the") and n_refs == 0 and rng.random() < 0.8:
            frame = NP_FRAMES[int(rng.integers(len(NP_FRAMES)))]
            return frame.replace("{np}", _lower_first(body))
        # a statement, then an imperative clause after ';' or '. ': frame the clause
        for sep in ("; ", ". "):
            if sep in body:
                head, tail = body.split(sep, 1)
                if tail.split(" ", 1)[0].lower() in IMPERATIVE and rng.random() < 0.8:
                    framed = self._frame(tail, rng)
                    if sep == "; " and not re.match(r"I\b", framed):  # "I'd like you to" keeps its capital
                        framed = framed[:1].lower() + framed[1:]
                    return head + sep + framed
        return body + end

    def candidates(self, text: str, rng: np.random.Generator, k: int) -> list[str]:
        """Up to k distinct rewrites of `text` (none equal to it), indicators kept verbatim."""
        protected, refs = self._protect(text.replace(CAPTION_SLOT, _SLOT))
        seen = {" ".join(text.lower().split())}
        out: list[str] = []
        for _ in range(k * 4):
            cand = tidy(self._restore(self._rewrite(protected, rng), refs)).replace(_SLOT, CAPTION_SLOT)
            cand = sentence_case(cand)
            norm = " ".join(cand.lower().split())
            if norm in seen:
                continue
            seen.add(norm)
            out.append(cand)
            if len(out) >= k:
                break
        return out
