"""The prompts of the model-backed methods, in one place so that inference and captioner fine-tuning use the
same words: the instruction captioner, the MLLM difference/commonality step, the instruction writer, the rewriter.
Images are named Image-1 ... Image-N in the prompt; answers use our indicators {image} / {imageN}."""

from __future__ import annotations

import numpy as np

from operators.models.backends.base import Part, image_parts

IMAGE_TOKEN = "<image>"  # InternVL's placeholder in its conversation fine-tuning format


def _refs(n_inputs: int) -> str:
    if n_inputs == 1:
        return "{image}"
    return ", ".join("{image%d}" % (i + 1) for i in range(n_inputs))


def image_header(n_images: int) -> str:
    """The text form of image_parts for InternVL's jsonl: one <image> placeholder per image, in order."""
    return "".join(f"Image-{i + 1}: {IMAGE_TOKEN}\n" for i in range(n_images))


def captioner_prompt(n_inputs: int) -> str:
    """What the instruction captioner is asked: the last image is the result, the others are the inputs."""
    if n_inputs == 1:
        return (
            "Image-1 is the input image and Image-2 is the result. Write the instruction that turns Image-1 into "
            "Image-2, as a user would type it. Refer to the input image as {image}. Answer with the instruction only."
        )
    names = ", ".join(f"Image-{i + 1}" for i in range(n_inputs))
    return (
        f"{names} are the input images and Image-{n_inputs + 1} is the result. Write the instruction that produces "
        f"Image-{n_inputs + 1} from the inputs, as a user would type it. Refer to the inputs as {_refs(n_inputs)}. "
        "Answer with the instruction only."
    )


def difference_prompt() -> str:
    """Step 1 of the natural-pair method: the MLLM states commonalities and differences of the two images."""
    return (
        "Compare Image-1 and Image-2. First list what they have in common (subject, identity, scene, style), then "
        "list how they differ (objects added or removed, attributes, pose, expression, colour, style, viewpoint, "
        "background). Be concise and concrete."
    )


def writer_prompt(description: str, n_inputs: int, caption: str = "") -> str:
    """Step 2: an LLM writes one instruction around the semantic difference, with an Emu Edit-style record."""
    cap = f"\nCaption of the edited image: {caption}" if caption else ""
    return (
        "An input image was edited into a second image. Here is how the two compare:\n"
        f"{description.strip()}{cap}\n\n"
        "Write one editing instruction that turns the input image into the edited image, centred on the most "
        f"important semantic difference. Refer to the input image as {_refs(n_inputs)}. Answer with a JSON object "
        'with the keys "instruction", "edit" (the kind of edit: add, remove, replace, attribute, style, background, '
        'global, local), "edited_object" (the object after the edit), "original_object" (the object before it) and '
        '"output" (a caption of the edited image).'
    )


def rewrite_prompt(instruction: str, n: int, task: str) -> str:
    return (
        f"Here is an instruction for an image task ({task}):\n{instruction}\n\n"
        f"Rewrite it in {n} different ways, as different people would phrase it. Keep its meaning. Keep every "
        "placeholder such as {image} or {image1} exactly as written. Write one rewrite per line, with no numbering "
        "and nothing else."
    )


def captioner_request_parts(inputs: list[np.ndarray], target: np.ndarray) -> list[Part]:
    return [*image_parts([*inputs, target]), captioner_prompt(len(inputs))]
