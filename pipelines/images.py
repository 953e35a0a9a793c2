"""The images job: read and decode each partition of source photos, make every enabled condition pair (both
directions), repainting sample and edit synthesized from the photo (remove/add/replace object, background, style,
text-to-image, layers, subject reference), write instructions, chain CUs into LCUs, apply the task mix, commit shards.
Partition names: img-00000, img-00001, ..."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from datagen.batch import ENTRIES
from datagen.config import Recipe
from datagen.ingest.listing import list_entries, plan_partitions
from datagen.ingest.read import ReadImages
from datagen.jobs import JobSpec
from datagen.operator import Operator
from datagen.shards.reader import read_index
from operators.assembly.lcu_chains import LcuChains
from operators.assembly.task_mix import TaskMix, mix_report
from operators.conditions.canny import Canny
from operators.conditions.contour import Contour
from operators.conditions.degradation import Degradation
from operators.conditions.depth import Depth
from operators.conditions.doodle import Doodle
from operators.conditions.grayscale import Grayscale
from operators.conditions.mosaic import Mosaic
from operators.conditions.pose import Pose
from operators.conditions.repainting import Repainting
from operators.conditions.scribble import Scribble
from operators.conditions.segmentation import Segmentation
from operators.edits.background_change import BackgroundChange
from operators.edits.layers import Layers
from operators.edits.remove_object import RemoveObject
from operators.edits.replace_object import ReplaceObject
from operators.edits.style_transfer import StyleTransfer
from operators.edits.subject_reference import SubjectReference
from operators.edits.text_to_image import TextToImage
from operators.instructions.stages import build_instruction_stages
from pipelines.build import configured, present
from pipelines.scoring import scoring_stages

PREFIX = "img"


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    return plan_partitions(list_entries(recipe.input), recipe.input.images_per_partition, PREFIX)


def stages(recipe: Recipe) -> list[Operator]:
    def op(cls: type[Operator]) -> Optional[Operator]:
        return configured(recipe, cls)

    makers = present(
        # the ten low-level conditions (BRIEF.md's order), each both ways: analysis and controllable generation
        op(Segmentation),
        op(Depth),
        op(Pose),
        op(Mosaic),
        op(Degradation),
        op(Grayscale),
        op(Canny),
        op(Doodle),
        op(Contour),
        op(Scribble),
        # repainting: inpainting and outpainting masks
        op(Repainting),
        # edits synthesized from one photo: element (remove/add, replace), semantic (background, style), text, layers
        op(RemoveObject),
        op(ReplaceObject),
        op(BackgroundChange),
        op(StyleTransfer),
        op(TextToImage),
        op(Layers),
        op(SubjectReference),  # reference generation: the subject cut out -> the photo
    )
    if not makers:
        return []
    return [
        ReadImages(recipe.input),
        *makers,
        *build_instruction_stages(recipe),  # templates, then captioner / MLLM difference / rewrites
        *present(op(LcuChains)),  # compose finished CUs into multi-turn LCUs
        *scoring_stages(recipe),  # scores on every sample (CU and LCU), then the quality filter
        *present(op(TaskMix)),  # task proportions, last before the commit
    ]


def summarize(recipe: Recipe, out: Path) -> Optional[dict[str, Any]]:
    """The task mix's target against what was achieved, when the recipe sets one."""
    mix = recipe.operators.get(TaskMix.name)
    if mix is None or not mix.enabled or not mix.weights:
        return None
    return {"mix": mix_report(mix.weights, read_index(out).select(["task", "kind"]).to_pylist())}


# the images job reads every input photo once: its partitions count the run's inputs
JOB = JobSpec(name="images", plan=plan, stages=stages, summarize=summarize, counts_inputs=True, given=(ENTRIES,))
