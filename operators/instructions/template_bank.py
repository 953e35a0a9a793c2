"""Instruction template bank for every ACE task (see datagen.schema.TASKS), written in the phrase grammar of
grammar.py so that each line stands for dozens of phrasings. Also each task's key terms (what a rewrite must keep).

Placeholders: `{image}` the current input, `{image1}`/`{image2}` numbered inputs (relative to the turn's own inputs),
`{caption}` the image caption; lines with `{caption}` are only used when a caption is known.
"""

from __future__ import annotations

from datagen import schema

# Condition maps described as objects: (indefinite phrases, definite phrases, extraction verbs).
_MAPS: dict[str, tuple[str, str, str]] = {
    "segmentation": (
        "[a segmentation map|a semantic segmentation map|a colour-coded segmentation|a segment map|a region map]",
        "[the segmentation map|the segmentation|the colour-coded segments|the segment layout|the region map]",
        "[Segment|Compute the segmentation of|Produce a segmentation map of|Partition into regions]",
    ),
    "depth": (
        "[a depth map|an inverse depth map|a depth image|a grayscale depth map]",
        "[the depth map|the depth|the depth layout|the inverse depth map|the estimated depth]",
        "[Estimate the depth of|Compute a depth map for|Predict the depth of|Produce a depth map from]",
    ),
    "pose": (
        "[a pose skeleton|an OpenPose skeleton|a human pose map|a keypoint skeleton|a stick-figure pose]",
        "[the pose skeleton|the human pose|the body pose|the keypoint skeleton|the OpenPose skeleton]",
        "[Estimate the human pose in|Detect the body keypoints in|Extract the pose skeleton from|Draw the pose of the "
        "person in]",
    ),
    "canny": (
        "[an edge map|a Canny edge map|an edge image|a binary edge map|a black-and-white edge map]",
        "[the edge map|the Canny edges|the edges|the edge lines|the detected edges]",
        "[Extract the edges of|Detect the edges in|Compute the Canny edges of|Run edge detection on|Find the edges in]",
    ),
    "doodle": (
        "[a doodle|a rough doodle|a hand-drawn doodle|a coarse sketch|a simple doodle sketch]",
        "[the doodle|the rough sketch|the doodle lines|the hand-drawn strokes|the coarse doodle]",
        "[Turn into a doodle|Doodle the main shapes of|Sketch a rough doodle of|Simplify into doodle strokes]",
    ),
    "contour": (
        "[a contour drawing|a contour map|an outline drawing|a contour line drawing|a contour sketch]",
        "[the contours|the contour drawing|the outlines|the contour lines|the object outlines]",
        "[Extract the contours of|Trace the contours of|Draw the outlines of|Outline the shapes in]",
    ),
    "scribble": (
        "[a scribble|a scribble drawing|an anime-style line drawing|a scribbled sketch|a line-art scribble]",
        "[the scribble|the scribble lines|the line art|the scribbled strokes|the scribble drawing]",
        "[Extract a scribble of|Turn into a scribble|Scribble the lines of|Make a line-art scribble of]",
    ),
}

_PHOTO = "[photo|picture|photograph]"  # no "image": "a image" after an optional adjective
_MAKE = "[Generate|Create|Produce|Render|Synthesize]"


def _analysis(cond: str) -> list[str]:
    a, the, verbs = _MAPS[cond]
    return [
        f"{verbs} {{image}}[.|, please.| and return the result.| and show me the result.| for me.]",
        f"[Turn|Convert|Transform] {{image}} into {a}[.| for me.|, please.]",
        f"[Give me|Show me|I need|I want|Return] {a} [of|for] {{image}}.",
        f"[Compute|Extract|Produce|Get|Output] {the} [of|from|for] {{image}}[| please].",
        f"[Show me|Display|Visualize|Render] {the} of {{image}}[| as an image| as a map].",
        f"[Compute|Extract|Produce|Get|Draw] {the} of {{caption}} [in|shown in|from] {{image}}.",
        f"{{image}} [shows|is a photo of|depicts] {{caption}}; [give me|produce|make|return] {a} of it.",
        f"[For|Given] this [photo|picture] of {{caption}} ({{image}}), [produce|output|compute|make] {a}.",
    ]


def _generation(cond: str) -> list[str]:
    a, the, _ = _MAPS[cond]
    return [
        f"{_MAKE} [a|a realistic|a natural|a photorealistic] {_PHOTO} [that follows|following|consistent "
        f"with|matching] {the} [in|of|given by] {{image}}.",
        f"[Use|Take|Treat] {{image}} as {a} and [generate|create|render|produce] [a|a realistic|a natural] {_PHOTO}.",
        f"[Turn|Convert|Transform] {the} {{image}} into a [|realistic |natural |lifelike ]{_PHOTO}.",
        f"[Paint|Render|Draw] a [|realistic |detailed ]scene [on top of|guided by|from] {the} [in|of] {{image}}.",
        f"{{image}} is {a}; [make|create|generate] a [|realistic |full-colour ]{_PHOTO} that [matches|follows|fits] "
        f"it.",
        f"{_MAKE} [a|a realistic|a detailed] {_PHOTO} of {{caption}} [that follows|following|guided by|consistent "
        f"with] {the} [in|of] {{image}}.",
        f"[Using|With|Guided by|Following] {the} [in|from|of] {{image}}, [generate|create|render|draw|paint] "
        f"{{caption}}.",
        f"{{image}} is {a}. [Render|Generate|Create|Make] a [|realistic |natural ]{_PHOTO} of {{caption}} [from "
        f"it|that matches it|on top of it].",
        f"[Starting from|Based on|Working from] {the} [in|of] {{image}}, [generate|create|render|synthesize] [a|a "
        f"realistic|a natural|a detailed] {_PHOTO}.",
        f"[Here is|This is] {a}: {{image}}. [Generate|Create|Render|Make] [a|a realistic|a natural|a lifelike] "
        f"{_PHOTO} [from it|that matches it|based on it].",
        f"[Create|Generate|Make|Render] a [|realistic |natural |detailed ]{_PHOTO} whose "
        f"[layout|structure|composition] [follows|matches|keeps to] {the} [in|of] {{image}}.",
    ]


TEMPLATES: dict[str, list[str]] = {
    cond_tasks[0]: _analysis(c) for c, cond_tasks in schema.CONDITION_TASKS.items() if c in _MAPS
}
TEMPLATES.update({cond_tasks[1]: _generation(c) for c, cond_tasks in schema.CONDITION_TASKS.items() if c in _MAPS})

TEMPLATES.update(
    {
        # photo effects: the "condition" is itself a photo, so the phrasing is about the effect
        "Grayscale": [
            "[Convert|Turn|Change] {image} [to|into] [grayscale|black and white|a monochrome image|shades of gray].",
            "[Make|Render|Turn] {image} [black and white|grayscale|monochrome][| please| completely| but keep the "
            "contrast].",
            "[Remove|Strip|Drain] [all|every trace of|the] colo[u|]r from {image}.",
            "[Desaturate|Decolorize|Decolourize] {image}[| completely| fully| entirely][| and keep the details| and "
            "keep the brightness].",
            "[Give me|Produce|Create|Return|Make] a [grayscale|black-and-white|monochrome|greyscale|colourless] "
            "[version|copy|rendition] of {image}.",
            "[Turn|Convert|Make] this [photo|picture] of {caption} ({image}) [into|to] [black and white|grayscale|a "
            "monochrome shot].",
            "{image} shows {caption}; [make|render|turn] it [black and white|grayscale|monochrome].",
            "[Show|Render|Give me] {caption} from {image} in [grayscale|black and white|shades of gray].",
        ],
        "Image Colorization": [
            "[Colorize|Colourize|Add colo[u|]r to] {image}[| please| realistically| with natural tones| in lifelike "
            "colours].",
            "[Add|Bring back|Restore] [natural|realistic|plausible|vivid] colo[u|]rs [to|into] the "
            "[grayscale|black-and-white|monochrome] [image|photo|picture] {image}.",
            "[Turn|Convert|Make] the [black-and-white|grayscale|monochrome] {image} [into|to] a "
            "[full-colour|colour|coloured] [photo|photograph|picture].",
            "[Bring|Restore] {image} [to life|back] with [realistic|natural|believable] colo[u|]rs.",
            "[Paint|Fill] [realistic|natural|lifelike] colo[u|]rs [onto|into] {image}.",
            "[Colorize|Colourize|Add colour to] {image}, [which shows|a photo of|showing|depicting] {caption}.",
            "{image} is a [grayscale|black-and-white|monochrome] photo of {caption}; [colorize|colourize|add natural "
            "colours to] it.",
            "[Give me|Produce|Create] a [colour|full-colour|coloured] version of this [grayscale|black-and-white] "
            "[photo|picture] of {caption} ({image}).",
            "Give {image} [natural|realistic|believable|vivid] colo[u|]rs[| throughout| everywhere| that look real].",
            "[Recolour|Recolor] the [grayscale|black-and-white|monochrome] {image} [with|in] "
            "[natural|realistic|plausible] [tones|hues|colours].",
            "[Predict|Guess|Infer] the [original|natural|likely] colo[u|]rs of {image}[| and apply them| and paint "
            "them in].",
        ],
        "Mosaic": [
            "[Apply|Add|Put] a [mosaic|pixelation|pixel mosaic] [effect|filter] [to|on] {image}.",
            "[Pixelate|Mosaic|Censor] {image}[| with large blocks| with coarse square blocks| heavily| completely| "
            "with a mosaic filter].",
            "[Turn|Convert|Make] {image} into a [pixelated|blocky|mosaic] [version|image|picture].",
            "[Cover|Obscure|Hide|Mask] [|the whole |the content of ]{image} [with|under|behind] [large |coarse "
            "|square |big |]mosaic blocks.",
            "[Give me|Produce|Return] a [pixelated|mosaic|blocky] version of {image}.",
            "[Pixelate|Mosaic|Blur out with blocks] this [photo|picture] of {caption} ({image}).",
            "{image} shows {caption}; [pixelate|mosaic|obscure] it with [square|coarse|large] blocks.",
        ],
        "Image Demosaicing": [
            "[Remove|Undo|Take away|Get rid of] the [mosaic|pixelation|pixel blocks] [in|from|of] {image}.",
            "[Restore|Recover|Reconstruct] the [pixelated|mosaic|blocky] {image} [to|into|as] a "
            "[sharp|clear|detailed|clean] [photo|picture|image].",
            "[De-pixelate|Unpixelate|Demosaic|Unblock] {image}[| and recover the details| and restore the fine "
            "detail| completely| back to a normal photo].",
            "[Reveal|Recover] the [details|original image|picture] [hidden under|behind] the mosaic [in|of] {image}.",
            "[Turn|Convert|Make] the [blocky|pixelated|mosaic] {image} [into|back into] a [clear|detailed|natural] "
            "[photo|picture].",
            "[Remove the mosaic from|Depixelate|Unpixelate] {image} [to reveal|to show|and recover] {caption}.",
            "{image} is a [pixelated|mosaic] [view|image|picture] of {caption}; [restore|recover|reconstruct] the "
            "[sharp|clear|full] [photo|picture].",
            "[Take|Strip] the [mosaic|pixelation|pixel blocks|block pattern] [off|away from] {image}[| and show the "
            "real picture| and bring back the details].",
            "[Show|Give] me {image} without [the|its] [mosaic|pixelation|blocky pixels|pixel blocks][| in full "
            "detail| as a normal photo].",
            "[Replace|Turn] the [coarse |large |square |]blocks [in|of] {image} [with|into] [fine|real|natural] "
            "[detail|details|texture].",
        ],
        "Image Degradation": [
            "[Degrade|Damage|Corrupt] {image} with [blur, noise and JPEG artifacts|noise and compression "
            "artifacts|blur and noise|heavy JPEG compression|camera noise and blur][| on purpose| realistically].",
            "[Make|Turn] {image} [into|look like] a [low-quality|badly compressed|blurry and noisy|poor-quality] "
            "[photo|picture|image].",
            "[Add|Apply|Put] [realistic |heavy |strong |]degradation [to|on] {image}[|: blur, noise and compression].",
            "[Lower|Reduce|Ruin] the [quality|image quality|sharpness] of {image}[| with blur and noise| with noise "
            "and JPEG compression].",
            "[Give me|Produce|Create|Make|Return] a [degraded|low-quality|blurry, noisy|poor-quality|heavily "
            "compressed] [version|copy|rendition] of {image}.",
            "[Degrade|Corrupt] this [photo|picture] of {caption} ({image}) [with|by adding] [blur and noise|noise and "
            "compression artifacts].",
            "{image} shows {caption}; make it look like a [low-quality|cheap|badly compressed] "
            "[photo|snapshot|picture].",
        ],
        "Image Restoration": [
            "[Restore|Repair|Fix|Enhance] {image}[| please| carefully| to its original quality| so it looks clean "
            "again].",
            "[Remove|Clean up|Get rid of] the [noise|blur|compression artifacts|noise and blur] [in|from] {image}.",
            "[Enhance|Improve|Increase] the [quality|image quality|sharpness|clarity] of {image}.",
            "[Turn|Convert|Make] the [low-quality|degraded|noisy|blurry] {image} [into|back into] a "
            "[clean|sharp|high-quality|clear] [photo|picture].",
            "[Restore|Recover] a [clean|sharp|high-quality|crisp] [version|photo] of {image}.",
            "[Restore|Repair|Enhance] this [degraded|noisy|blurry] [photo|picture] of {caption} ({image}).",
            "{image} is a [degraded|noisy|blurry|low-quality] [photo|picture] of {caption}; [restore|enhance|clean] "
            "it.",
            "[Remove the noise and blur from|Clean up|Sharpen] {image} so that {caption} [looks|appears|is] "
            "[sharp|clear|crisp].",
            "[Make|Get] {image} [sharp|clean|clear|crisp] [again|once more][| by removing the noise and blur| without "
            "losing detail].",
            "[Denoise|Deblur|Denoise and deblur] {image}[| carefully| and keep the details| without losing detail].",
            "[Undo|Reverse] the [blur and noise|noise and compression artifacts|blur|compression artifacts] [in|of] "
            "{image}[| and recover a clean photo].",
            "[Recover|Bring back] the [sharpness|clarity|original quality|clean detail] of {image}.",
        ],
        # repainting
        "Inpainting": [
            "[Fill in|Complete|Repaint|Inpaint] the [masked|missing|blanked-out|hidden] [region|area|part] of {image}.",
            "[Inpaint|Restore|Reconstruct] {image} [where it is masked|inside the mask|in the masked area][| "
            "seamlessly| so nothing looks missing].",
            "[Repaint|Regenerate|Redraw] the [masked|marked] [region|area|part] of {image} [so it blends "
            "in|naturally|seamlessly|to match its surroundings].",
            "[Fill|Paint] the [hole|gap|masked region|masked area] in {image} [with plausible content|naturally|so it "
            "looks complete].",
            "[Complete|Fill in|Inpaint] {image} so that [it shows|the whole picture shows|the result shows] {caption}.",
            "[Repaint|Fill in|Restore] the masked [region|area|part] of {image}, a [photo|picture] of {caption}.",
            "{image} [shows|is] {caption} with a [masked|missing] [region|area]; [fill it in|complete it|repaint "
            "it][| seamlessly].",
            "[Fill|Patch] the [missing|blank|masked] [part|region|area] [of|in] {image} [with content that fits|so it "
            "matches the rest|so the picture looks whole].",
            "[Reconstruct|Recover|Paint in] what is [hidden|missing] under the mask [in|of] {image}[| so it blends "
            "with the rest].",
            "[Complete|Finish] {image} by [filling in|painting in|repainting] the [masked|missing|blank] "
            "[region|area|part][| seamlessly].",
        ],
        "Outpainting": [
            "[Extend|Expand|Enlarge] {image} beyond its [borders|edges|frame][| naturally| in every direction| and "
            "fill in the new area].",
            "[Outpaint|Extend|Widen] {image} [to a wider view|to fill the whole canvas|outwards|on all sides][| "
            "seamlessly| so the scene continues].",
            "[Fill|Complete|Paint] the [empty|blank|masked|missing] [border|margins|surroundings] [around|of] {image}.",
            "[Continue|Extend] the [scene|picture|content] of {image} [past|beyond|outside] its [edges|border|frame].",
            "[Zoom out of|Widen the view of] {image} and [fill in|paint|complete] the [new|missing|surrounding] "
            "[area|areas|border].",
            "[Extend|Expand|Outpaint] {image} [outward|beyond its borders|to a larger canvas] to show more of "
            "{caption}.",
            "{image} [shows|is a crop of] {caption}; [extend|expand|outpaint] it [beyond its borders|to a wider "
            "view|on every side].",
        ],
        # semantic editing
        "Facial Editing": [
            "[Edit|Change|Alter|Modify|Adjust|Retouch] the [face|facial features|facial appearance|facial attributes] "
            "of the [person|subject|individual] in {image}[| slightly| subtly| noticeably].",
            "[Change|Alter|Adjust|Vary] the [facial expression|face|look|expression] [in|of the person in|of the "
            "subject in] {image}[| while keeping their identity| but keep the same person| and keep everything else].",
            "[Give|Show] the [person|subject] in {image} a [different|new|changed] [expression|look|facial "
            "appearance|hairstyle or expression][| with the same identity].",
            "[Edit|Retouch|Change] the face in {image} [but keep the same person|keeping the identity|without "
            "changing who it is].",
            "[Edit|Change|Modify] the face in {image} so that [the result shows|it becomes|it looks like] {caption}.",
            "[Make|Turn] the person in {image} [look like|into] {caption}[| while keeping their identity].",
            "[Keep|Preserve] the identity of the person in {image} and [show|render|depict] {caption}.",
        ],
        "Style Transfer": [
            "[Restyle|Repaint|Re-render|Redraw|Reimagine] {image} in [a different|a new|another|an artistic|a "
            "painterly|an illustrated] style[| while keeping its content| but keep the layout].",
            "[Change|Transfer|Alter|Switch] the [artistic |visual |rendering |]style of {image}[| while keeping its "
            "content| but keep the composition| and keep the scene the same].",
            "[Make|Turn] {image} [look like|into] [a painting|an illustration|an artwork|a stylized picture][| of the "
            "same scene| with the same layout].",
            "[Apply|Transfer|Copy] the [style|look|artistic style] of {image2} [to|onto] {image1}[| but keep its "
            "content].",
            "[Repaint|Render|Redraw|Restyle] {image1} in the [style|manner|visual style] of {image2}[| without "
            "changing its layout].",
            "[Restyle|Repaint|Re-render] {image} so that it [becomes|shows|looks like] {caption}.",
            "[Render|Repaint|Redraw] the content of {image} as {caption}.",
            # synthesized edits name their style ({style}: "a watercolour painting")
            "[Turn|Convert|Transform|Make] {image} into {style}[.| while keeping its content.| but keep the "
            "composition.| with the same layout.]",
            "[Render|Repaint|Redraw|Restyle] {image} as {style}[.| without changing the layout.| and keep the scene.]",
            "[Make|Let] {image} look like {style}[.| of the same scene.| with the same composition.]",
            "[Restyle|Re-render|Redraw] {image} in the style of {style}[.|, keeping its content.]",
        ],
        # element editing
        "Add Object": [
            "[Add|Insert|Place|Put] [an object|a new object|something|a new element] [in|into] the [masked|marked] "
            "[region|area] of {image}.",
            "[Add|Insert|Put] a [new |fitting |plausible |]object [into|in] {image} [where the mask is|inside the "
            "mask|in the marked area].",
            "[Add|Insert] [an object|something new|a new element] [into|to] {image} [so that it fits the "
            "scene|naturally|seamlessly|realistically].",
            "[Edit|Change] {image} by adding [an object|a new element] so that it [shows|becomes] {caption}.",
            "[Add|Insert] [an object|something] [to|into] {image} so that the [result|picture|scene] shows {caption}.",
            # synthesized edits name the object ({object}: "a dark object in the lower left")
            "[Add|Insert] {object} [to|into] {image}[.| where the mask is.| so that it fits the scene.| seamlessly.]",
            "[Place|Put] {object} in {image}[.| where the mask is.| so that it fits the scene.]",
            "[Add|Insert|Put] {object} [in|into] the [masked|marked] [region|area] of {image}[.| naturally.]",
            "{image} [needs|is missing|lacks] {object}; [add|insert] it[.| naturally.| seamlessly.]",
            "[Edit|Change] {image} by adding {object}[.| to the scene.]",
            "[Add|Insert] {object} [to|into] {image} so that it shows {caption}.",
        ],
        "Remove Object": [
            "[Remove|Erase|Delete|Take out] the [object|thing|item|element] in the [masked|marked] [region|area] of "
            "{image}.",
            "[Erase|Remove|Clear] the [masked|marked] [content|object|area] [from|in] {image} and [fill in the "
            "background|restore the background|fill the gap naturally].",
            "[Remove|Erase|Delete] [the|an] [object|item|element] from {image}[| and leave the background intact| "
            "seamlessly].",
            "[Clean|Clear] {image} by [removing|erasing|deleting] the [object|thing|item] [in the mask|inside the "
            "marked area|in the masked region].",
            "[Remove|Erase|Delete] the [object|item|thing] in {image} so that [only |]{caption} [remains|is left].",
            # synthesized edits name the object ({object}: "the dark object in the lower left")
            "[Remove|Erase|Delete|Take out] {object} [from|in] {image}[.| and fill in the background.| seamlessly.| "
            "and leave the rest untouched.]",
            "[Erase|Get rid of|Clear away|Remove] {object} [from|in] {image} so that [the background shows "
            "through|nothing is left there|the scene looks untouched].",
            "[Make|Let] {object} [disappear|vanish] from {image}[.| without a trace.| and restore what is behind it.]",
            "[Clean|Clear] {image} by [removing|erasing|deleting] {object}.",
            "{image} [shows|is] {caption}; [remove|erase|delete] {object}[ from it|].",
        ],
        "General Editing": [
            "[Edit|Change|Modify|Alter|Update] {image} [to get|to match|into|to produce] the "
            "[edited|target|new|changed] [version|picture|image].",
            "[Make|Apply|Perform] [an edit|a change|a visible change|a semantic edit|a local edit] [to|on] {image}[| "
            "while keeping the rest of the scene| and keep the rest unchanged| without changing the overall layout].",
            "[Edit|Change|Modify|Alter] {image} so that it [shows|becomes|depicts|looks like] {caption}.",
            "[Turn|Transform|Change] {image} into [a picture|a photo|an image|a scene] of {caption}.",
            "[Edit|Update|Rework] {image}: [the result|the new picture|the edited image] [should show|shows|must "
            "show] {caption}.",
            "[Starting from|Using|Based on] {image}, [make|create|produce] [a picture|an image|a photo] of {caption}.",
        ],
        "Replace Object": [
            "[Replace|Swap|Exchange] the [object|item|thing] in the [masked|marked] [region|area] of {image} with "
            "[another|a different|a new] [object|one|item].",
            "[Change|Turn] the [masked|marked] [object|item] in {image} into [something else|a different "
            "object|another object][.| seamlessly.]",
            "[Substitute|Replace] [a new|another|a different] [object|item] for the one [in the mask|in the marked "
            "area] of {image}[.| seamlessly.| naturally.]",
            "[Replace|Swap] the [object|item] in {image} [so that|and make sure] the [result|scene|picture] shows "
            "{caption}.",
            "[Change|Replace] the marked [object|item] in {image}, a [photo|picture] of {caption}, with [another|a "
            "new] one.",
            # synthesized edits name both objects ({object}: "the dog on the left", {new_object}: "a cat")
            "[Replace|Swap|Exchange] {object} in {image} with {new_object}[.| and keep everything else.| seamlessly.]",
            "[Turn|Change] {object} in {image} into {new_object}[.| while keeping the rest of the scene.]",
            "[Put|Place] {new_object} [in place of|instead of] {object} in {image}.",
            "[Substitute|Use] {new_object} [for|instead of] {object} in {image}.",
        ],
        "Background Change": [
            "[Change|Replace|Swap] the background of {image}[.| and keep the subject.| but keep the main subject as "
            "it is.]",
            "[Give|Put] {image} [a new|a different|another] [background|backdrop|setting][| behind the subject| while "
            "keeping the foreground].",
            "[Keep|Preserve] the [subject|foreground|main object] of {image} and [change|replace|redo] [the "
            "background|everything behind it|its surroundings].",
            "[Change|Replace] the background of {image}, a [photo|picture] of {caption}[.| and keep the subject.]",
            "{image} shows {caption}; [change|replace|swap] [its|the] background[.| and keep the rest.]",
            # synthesized edits name the subject and the new background ({background}: "a blurred, out-of-focus
            # background")
            "[Replace|Swap] the background of {image} with {background}[.| and keep {object} as it is.| but keep the "
            "foreground.]",
            "Change the background of {image} to {background}[.| and keep {object} as it is.| but keep the "
            "foreground.]",
            "[Put|Place|Move] {object} [from|in] {image} in front of {background}.",
            "Give {image} {background}[.| behind {object}.| while keeping {object}.]",
            "[Keep|Preserve] {object} in {image} and [make|turn] the [background|backdrop] into {background}.",
        ],
        # layer editing: a layer is a frame whose mask is its alpha
        "Layer Decomposition": [
            "[Decompose|Split|Separate|Break down|Break up] {image} into [layers|separate layers|a foreground and a "
            "background layer|two layers|its layers][.| cleanly.| please.| for editing.| for me.| so each part can be "
            "edited.]",
            "[Extract|Isolate|Cut out|Lift out|Separate out] [a layer|one layer|the main layer|a single layer] from "
            "{image}[.| on its own.| cleanly.| with a clean edge.| and keep only that.| as a separate image.]",
            "[Separate|Split|Decompose] the [layers|foreground and background|front and back layers] of {image}[.| "
            "cleanly.| along the object's outline.| along the subject's edge.| please.]",
            "[Decompose|Split|Separate] this [photo|picture|image] of {caption} ({image}) into [layers|separate "
            "layers].",
            "{image} shows {caption}; [separate|split|decompose] it into layers.",
            # synthesized edits name the layer and the object ({layer}: "the foreground layer")
            "[Extract|Give me|Return|Produce|Hand me] {layer} of {image}[.|, separated from the rest.| as its own "
            "layer.| and nothing more.| on its own.| as a standalone layer.]",
            "[Separate|Split|Cut|Detach] {object} from {image} and [return|output|give me|keep|show] {layer}[.| "
            "only.| as a clean layer.]",
            "[Decompose|Split|Break] {image} into a foreground layer ({object}) and a background layer[,|;| and] "
            "[return|output|keep|show|give me] {layer}[.| only.]",
            "[Return|Give me|Extract] {layer} of {image}, a [photo|picture] of {caption}.",
            "[Pull|Take|Lift|Peel] {layer} [out of|off|away from] {image}[.| and leave the rest behind.| with a "
            "clean outline.| along the subject's edge.| without the other layer.]",
            "[Output|Produce|Show|Render] only {layer} of {image}[.|, nothing else.|, as a separate layer.|, "
            "split from the rest.|, with the other layer removed.]",
            "[Isolate|Keep|Preserve] {layer} of {image} [and drop the rest|on its own|as its own image|and discard "
            "the other layer|by itself][.| please.| cleanly.]",
            "[Split|Separate|Decompose] {image} along the outline of {object} and [keep|return|output] {layer}[.| "
            "as a layer of its own.| for compositing.]",
            "[I need|I want|Please give me] {layer} of {image}[, split off from the rest|, as a separate "
            "layer|, extracted cleanly| on its own][.| for compositing.| for editing.]",
        ],
        "Layer Fusion": [
            "[Place|Put|Composite|Paste] the [foreground |]layer {image1} [onto|over|into|on top of] the background "
            "{image2}[.| seamlessly.| and blend them.| so they look like one photo.| with matching light.]",
            "[Fuse|Combine|Merge|Blend|Join] the layers {image1} and {image2} into [one|a single|a seamless] "
            "[photo|picture|image][.| again.| with no visible seam.]",
            "[Composite|Merge|Layer] {image1} [over|on top of|in front of] {image2}[.| so the result looks like one "
            "photo.| as one picture.| and hide the seam.| into a natural-looking image.]",
            "[Combine|Merge|Fuse] {image1} and {image2} into a [photo|picture] of {caption}.",
            "[Place|Put] {image1} on {image2} to [get|make|create] a [photo|picture] of {caption}.",
            # synthesized edits name the object of the foreground layer
            "[Place|Put|Insert|Paste|Drop] {object} from {image1} [into|onto|back into|back onto] the [background|"
            "backdrop|scene] [{image2}|of {image2}|shown in {image2}][.| seamlessly.| so that it fits.]",
            "[Fuse|Combine|Merge|Join] the layer of {object} ({image1}) with the [background|backdrop|background "
            "layer] {image2}[.| into one photo.| into a single picture.| seamlessly.]",
            "[Put|Place|Set|Insert] {object} ({image1}) [back |]into the [scene|setting|background] of {image2}[.| "
            "so that it looks natural.| with matching light.| where it belongs.]",
            "[Blend|Merge|Composite|Fuse] {object} from {image1} [into|with] the background [in|of] {image2}[.| as "
            "one photo.| seamlessly.| with consistent lighting.| without a visible edge.]",
            "[Combine|Join|Fuse|Merge] the foreground layer {image1} and the background layer {image2}[.| into a "
            "single picture.| into one natural-looking photo.| into one image.| again.]",
            "[Reassemble|Rebuild|Recompose|Put back together] the [photo|picture|scene|image] from its layers: "
            "{image1} [in front of|on top of|over] {image2}[.| seamlessly.]",
            "[Layer|Stack] {image1} [on top of|over] {image2} [and blend the edges|and merge them into one "
            "picture|and blend them into a single photo|and fuse them][.|, keeping the light consistent.]",
            "[Composite|Place|Put] {object} [onto|over|into] {image2}[, using|, taking it from|, cut out in] "
            "{image1}[.| as the foreground layer.| so the two layers become one photo.]",
            "[Merge|Fuse|Combine] {image2} with the [cut-out|foreground] layer of {object} ({image1})[.| and make it "
            "look untouched.| so no seam shows.| into the original photo.]",
        ],
        # reference generation: the inputs are references, the target a new image of the same subject
        "Reference Generation": [
            "[Generate|Create|Make|Render] a new [image|picture|photo] of the [subject|main subject|object] in "
            "{image1}.",
            "[Using|With|Taking] {image1} as [a|the] reference, [generate|create|render] [a new|another|a different] "
            "[image|picture|view].",
            "[Show|Render|Depict] the [subject|object|main subject] of {image1} [from another viewpoint|in a "
            "different setting|in a new scene|from a different angle].",
            "[Using|With|Taking] {image1} as [a|the] reference, [generate|create|render|paint] {caption}.",
            "[Generate|Create|Render] [an image|a picture|a photo] of {caption} [that keeps|with|preserving] the "
            "[subject|look|appearance] of {image1}.",
            "[Combine|Merge] the [subject|content] of {image1} [with|and] {image2} into [one|a single|a new] "
            "[image|picture|scene].",
            "[Place|Put] the [subject|object] of {image1} into the [scene|setting] of {image2}.",
            "[Using|With] {image1} and {image2} as references, [generate|create|render] {caption}.",
            # a subject cut out of a photo ({object}: "the grey object") is the reference
            "[Generate|Create|Render] [a|a new] [picture|photo|scene] [with|showing|featuring] {object} from "
            "{image1}[.| in a natural setting.| in its surroundings.]",
            "[Place|Put] {object} [shown in|of] {image1} [into|in] [a scene|a fitting scene|its setting][.| and "
            "render a photo.]",
            "[Using|With] {object} in {image1} as [a|the] reference, [generate|create|render] {caption}.",
        ],
        # text-guided generation: no input image
        "Text-to-Image": [
            "[Generate|Create|Draw|Paint|Render|Make] [an image|a picture|a photo|a photograph] of {caption}.",
            "[Show me|I want to see|Give me] [an image|a picture|a photo] of {caption}.",
            "{caption}[.|, as a photo.|, in a realistic style.|, photographed in natural light.]",
            "[A photo|A picture|An image|A realistic photo] of {caption}.",
            "[Create|Generate|Produce] a [realistic|detailed|high-quality|natural] [image|photo|picture] "
            "[showing|depicting|of] {caption}.",
            "[Generate|Create|Render] [an image|a picture|a photo][| of a scene][| with natural lighting].",
        ],
        # a turn of a chain; the chain's own turns carry their own tasks, this is the generic edit
        "Multi-turn Editing": [
            "[Now |Next, |Then |][edit|change|modify|adjust|rework] {image} [further|once more|again][| while keeping "
            "the rest].",
            "[Now |Next, |Then |][edit|change|modify|update] {image} so that it [shows|becomes|looks like] {caption}.",
            "[Continue editing|Keep editing|Go on editing] {image}[| and make the next change| with the next edit| in "
            "the same way| one step further].",
            "[Now |Next, |Then |][turn|transform|change] {image} into [a picture|an image|a scene] of {caption}.",
        ],
    }
)

# Regex (case-insensitive) of words a phrasing of the task must keep; a rewrite without one lost the task.
# Generic edit tasks have none: their meaning is carried by the indicators and the caption.
_MAP_TERMS = {
    "segmentation": r"segment|region|area|colou?r-coded|partition|parts",
    "depth": r"depth|distance|near|far|3d",
    "pose": r"pose|skeleton|keypoint|stick|posture|joints|body",
    "canny": r"edge|canny|outline|contour|line|boundar",
    "doodle": r"doodle|sketch|scribbl|stroke|drawing|drawn",
    "contour": r"contour|outline|line|silhouette|edge|drawing",
    "scribble": r"scribbl|line|sketch|drawing|stroke|art",
}
TASK_TERMS: dict[str, str] = {}
for _cond, (_ana, _gen) in schema.CONDITION_TASKS.items():
    if _cond in _MAP_TERMS:
        TASK_TERMS[_ana] = _MAP_TERMS[_cond]
        TASK_TERMS[_gen] = _MAP_TERMS[_cond]
TASK_TERMS.update(
    {
        "Grayscale": r"gr[ae]y|black[- ]and[- ]white|monochrom|desaturat|decolou?ri|colou?r",
        "Image Colorization": r"colou?r",
        "Mosaic": r"mosaic|pixel|block|censor",
        "Image Demosaicing": r"mosaic|pixel|block|sharp|clear|detail",
        "Image Degradation": r"degrad|low[- ]quality|poor[- ]quality|nois|blur|artifact|artefact|compress|quality"
        r"|damag|corrupt|cheap|ruin|sharpness",
        "Image Restoration": r"restor|repair|fix|enhanc|clean|sharp|nois|blur|quality|clear|clarity|crisp|recover"
        r"|artifact|artefact|denois|deblur",
        "Inpainting": r"mask|mark|fill|inpaint|missing|hole|gap|complete|repaint|regenerat|redraw|hidden|blank",
        "Outpainting": r"extend|expand|outpaint|border|edge|beyond|wider|widen|zoom|margin|canvas|frame|surround",
        "Facial Editing": r"face|facial|expression|person|identity|look|subject|individual",
        "Style Transfer": r"styl|repaint|re-render|redraw|render|look|painting|illustrat|artwork|reimagin|sketch"
        r"|drawing|cartoon|turn|convert|transform",
        "Add Object": r"add|insert|place|put|new",
        "Remove Object": r"remov|eras|delet|take out|clear|clean|get rid|disappear|vanish",
        "Replace Object": r"replac|swap|exchang|substitut|instead|turn|chang",
        "Background Change": r"background|backdrop|behind|surround|setting|in front of",
        "Layer Decomposition": r"layer|separat|decompos|split|extract|isolat|cut out",
        "Layer Fusion": r"layer|fus|combin|merg|composit|place|put|insert|blend",
    }
)

# Emu Edit's instruction record names the kind of edit; the tasks where the kind is known from the task itself.
EMU_EDIT_KIND: dict[str, str] = {
    "Add Object": "add",
    "Remove Object": "remove",
    "Style Transfer": "global",
    "Facial Editing": "local",
    "Inpainting": "local",
    "Outpainting": "global",
    "General Editing": "global",
    "Image Colorization": "color",
    "Grayscale": "color",
    "Image Restoration": "texture",
    "Image Degradation": "texture",
    "Mosaic": "texture",
    "Image Demosaicing": "texture",
    "Reference Generation": "reference",
    "Multi-turn Editing": "global",
    "Text-to-Image": "text",
    "Replace Object": "replace",
    "Background Change": "background",
    "Layer Decomposition": "layer",
    "Layer Fusion": "layer",
}
