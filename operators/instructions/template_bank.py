"""Instruction templates per ACE task. `{image}` is the current input image; `{caption}` is filled with the
image's caption when one is known, and templates that need it are skipped when none is."""
from __future__ import annotations

TEMPLATES: dict[str, list[str]] = {
    "Grayscale": [
        "Convert {image} to grayscale.",
        "Make {image} black and white.",
        "Remove all colour from {image}.",
        "Turn {image} into a monochrome photo.",
        "Desaturate {image} completely.",
        "Render {image} in shades of gray.",
        "Give me a grayscale version of {image}.",
        "Turn this photo of {caption} in {image} into black and white.",
    ],
    "Image Colorization": [
        "Colorize {image}.",
        "Add natural colours to the grayscale image {image}.",
        "Bring {image} to life with realistic colour.",
        "Turn the black-and-white {image} into a colour photo.",
        "Restore plausible colours to {image}.",
        "Paint realistic colours onto {image}.",
        "Colorize {image}, which shows {caption}.",
        "Make {image} a full-colour photograph.",
    ],
    "Edge map Extraction": [
        "Extract the edge map of {image}.",
        "Detect the edges in {image}.",
        "Run Canny edge detection on {image}.",
        "Show only the outlines of {image} as white lines on black.",
        "Produce an edge map from {image}.",
        "Give me the Canny edges of {image}.",
        "Find the edges of {caption} in {image}.",
        "Draw the edge lines of {image}.",
    ],
    "Edge-guided Generation": [
        "Generate a photo that follows the edges in {image}.",
        "Create a realistic image from the edge map {image}.",
        "Use {image} as a Canny edge map and render a photo.",
        "Turn the line edges in {image} into a natural image.",
        "Fill in the edge map {image} to make a photograph.",
        "Generate an image of {caption} following the edges of {image}.",
        "Produce a photo whose contours match {image}.",
        "Make a realistic picture based on the edges in {image}.",
    ],
}

# Used when a task has no bank yet: generic but correct phrasing, with the indicator placed.
GENERIC: dict[str, list[str]] = {
    "analysis": ["Produce the {task} result for {image}.", "Apply {task} to {image}."],
    "generation": ["Generate an image from {image} ({task}).", "Use {image} as the condition for {task}."],
    "edit": ["Edit {image}: {task}.", "Apply {task} to {image}."],
    "reference": ["Use {image1} as reference and create a related image ({task})."],
    "text": ["Generate an image: {caption}."],
}
