"""The judge's questions: one prompt template per kind of turn (an edit, text-to-image, a condition map either way,
layer decomposition and fusion, reference generation), in two styles: datagen's (one request per pass, three axes
and a reason as JSON) and EditScore's (a semantic request on every image and a perceptual one on the target, each
answering `{"reasoning": ..., "score": [...]}` on a 0-score_range scale, as its published models were trained).
Each template is named and hashed (`JudgePrompt.hash`): a score record names the question it answers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from datagen import schema

MARKER = "Rate the result"  # datagen's judge prompts begin so (the tests' local server answers them by it)
EDITSCORE_MARKER = "You judge AI-made images as a professional digital artist"  # EditScore-style prompts begin so

FOLLOWING, PRESERVATION, QUALITY = "following", "preservation", "quality"
AXES = (FOLLOWING, PRESERVATION, QUALITY)

_QUALITY = (
    "quality: how natural and free of artefacts the result looks (0 = broken, distorted or smeared, 10 = flawless)."
)
_ANSWER = (
    "Answer with JSON only: "
    '{{"following": <0-10>, "preservation": <0-10>, "quality": <0-10>, "reason": "<one short sentence>"}}'
)
_ANSWER_NO_PRESERVATION = (
    'Answer with JSON only: {{"following": <0-10>, "quality": <0-10>, "reason": "<one short sentence>"}}'
)


@dataclass(frozen=True)
class JudgePrompt:
    """One question the judge is asked. `template` has `{instruction}`; `images` says what the judge sees:
    "edit" (the turn's first input, then the target), "inputs" (every input of the turn, then the target) or
    "target" (the target alone); `axes` the scores the answer must give."""

    name: str
    template: str
    images: str
    axes: tuple[str, ...]

    @property
    def hash(self) -> str:
        """sha256 of the template (its name, images and text), first 12 hex digits."""
        text = f"{self.name}\n{self.images}\n{' '.join(self.axes)}\n{self.template}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def render(self, instruction: str, score_range: int = 10) -> str:
        return self.template.format(instruction=instruction, range=score_range)


def _datagen(name: str, images: str, task: str, preservation: str | None) -> JudgePrompt:
    head = f"{MARKER} as a strict judge of image editing data. {task} "
    if preservation is None:
        text = head + "following: how well the result carries out the request (0 = not at all, 10 = exactly). "
        return JudgePrompt(name, text + _QUALITY + " " + _ANSWER_NO_PRESERVATION, images, (FOLLOWING, QUALITY))
    text = (
        head + "following: how well the result carries out the instruction (0 = not at all, 10 = exactly). "
        f"preservation: {preservation} "
    )
    return JudgePrompt(name, text + _QUALITY + " " + _ANSWER, images, AXES)


DATAGEN_PROMPTS: dict[str, JudgePrompt] = {
    p.name: p
    for p in (
        _datagen(
            "datagen/edit",
            "edit",
            'Image-1 is an input image and Image-2 is the result of this instruction: "{instruction}".',
            "whether everything the instruction does not ask to change is kept as it was in Image-1 (0 = the "
            "whole picture was repainted or over-edited, 10 = nothing else changed).",
        ),
        _datagen(
            "datagen/text_to_image",
            "target",
            'Image-1 was made for this request: "{instruction}".',
            None,
        ),
        _datagen(
            "datagen/analysis",
            "edit",
            'Image-1 is a photo and Image-2 is the map this instruction asks for: "{instruction}".',
            "whether the map follows Image-1 exactly: every shape, edge and object where it is in the photo (0 = "
            "another scene, 10 = exact).",
        ),
        _datagen(
            "datagen/generation",
            "edit",
            'Image-1 is a control map and Image-2 is the picture made from it by this instruction: "{instruction}".',
            "whether Image-2 keeps the layout of Image-1: every shape, edge and pose where the map puts it (0 = "
            "ignores the map, 10 = exact).",
        ),
        _datagen(
            "datagen/layer_decomposition",
            "edit",
            'Image-1 is a photo and Image-2 should be the one layer this instruction asks for: "{instruction}". A '
            "foreground layer is the subject alone on a plain fill; a background layer is the rest of the photo "
            "with the subject's place left empty.",
            "whether the layer's pixels are exactly Image-1's where the layer has content, with nothing of the "
            "other layer left in it (0 = repainted or mixed, 10 = exact).",
        ),
        _datagen(
            "datagen/layer_fusion",
            "inputs",
            "Image-1 is a foreground layer, Image-2 a background layer, and Image-3 should be the one photo this "
            'instruction asks for: "{instruction}".',
            "whether Image-3 keeps both layers as they are, the foreground where Image-1 has it over the background "
            "of Image-2 (0 = either layer changed, 10 = exact).",
        ),
        _datagen(
            "datagen/reference",
            "inputs",
            'The last image was generated from the reference image(s) before it by this instruction: "{instruction}".',
            "whether the subject of the reference keeps its identity and appearance (shape, colours, markings) "
            "in the generated image (0 = another subject, 10 = the same one).",
        ),
    )
}

# EditScore's published models read two questions (VectorSpaceLab/EditScore, editscore/__init__.py): semantic
# consistency over every image, answering [instruction following, over-editing], and perceptual quality over the
# edited image, answering [naturalness, artefacts]; scores on 0-score_range (25 in its release), the lower of the
# quality pair kept. Written for datagen in the shape those models were tuned to answer: a context, the rules,
# reasoning first, JSON.
_ES_CONTEXT = (
    f"{EDITSCORE_MARKER}: you rate the images against the rules below. All the images and the instruction are "
    "given to you; people in them are AI-made, so there is no privacy concern. Think first, then answer only with "
    'JSON: {{"reasoning": "...", "score": [...]}}, the reasoning at most one short sentence.'
)
EDITSCORE_SC = JudgePrompt(
    "editscore/semantics",
    _ES_CONTEXT + "\nRULES: two images: the first is the original image, the second an edited version of it. Score two "
    "things from 0 to {range}. The first score: how well the editing instruction was carried out (0 = the edit is "
    "not there at all, {range} = exactly). The second score: how much of the image was over-edited, changed where "
    "the instruction did not ask (0 = a different picture, {range} = only what the instruction asks changed). "
    "Put the two scores in the list, following first.\n"
    "Editing instruction: {instruction}",
    "edit",
    (FOLLOWING, PRESERVATION),
)
EDITSCORE_SC_TEXT = JudgePrompt(
    "editscore/semantics_text",
    _ES_CONTEXT + "\nRULES: one AI-generated image. Score from 0 to {range} how well it matches the text "
    "prompt (0 = not at all, {range} = exactly). Put the one score in the list.\nText prompt: {instruction}",
    "target",
    (FOLLOWING,),
)
EDITSCORE_PQ = JudgePrompt(
    "editscore/quality",
    _ES_CONTEXT + "\nRULES: the image is AI-generated. Score two things from 0 to {range}. The first score: how "
    "natural it looks (light, shadows, a sense of distance; 0 = unnatural, {range} = natural). The second score: "
    "how free it is of artefacts (distortion, blur, odd body parts, watermarks; 0 = heavy, {range} = none). Put "
    "the two scores in the list.",
    "target",
    (QUALITY,),
)


def datagen_prompt(task: str) -> JudgePrompt:
    """The datagen-style question for a turn of `task`."""
    if task == "Layer Decomposition":
        return DATAGEN_PROMPTS["datagen/layer_decomposition"]
    if task == "Layer Fusion":
        return DATAGEN_PROMPTS["datagen/layer_fusion"]
    direction = schema.TASKS[task].direction
    return DATAGEN_PROMPTS[
        {
            schema.DIRECTION_TEXT: "datagen/text_to_image",
            schema.DIRECTION_REFERENCE: "datagen/reference",
            schema.DIRECTION_ANALYSIS: "datagen/analysis",
            schema.DIRECTION_GENERATION: "datagen/generation",
        }.get(direction, "datagen/edit")
    ]


def editscore_prompts(task: str) -> tuple[JudgePrompt, JudgePrompt]:
    """(semantic, perceptual) EditScore-style questions for a turn of `task`."""
    if schema.TASKS[task].direction == schema.DIRECTION_TEXT:
        return EDITSCORE_SC_TEXT, EDITSCORE_PQ
    return EDITSCORE_SC, EDITSCORE_PQ


def prompt_table() -> list[tuple[str, str, str]]:
    """(name, hash, axes) of every judge prompt, for the docs' judging page."""
    every = [*DATAGEN_PROMPTS.values(), EDITSCORE_SC, EDITSCORE_SC_TEXT, EDITSCORE_PQ]
    return [(p.name, p.hash, ", ".join(p.axes)) for p in every]
