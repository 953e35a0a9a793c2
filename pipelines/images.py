"""The images job: read and decode each partition of source photos, make every enabled condition pair (both
directions), repainting sample and edit synthesized from the photo (remove/add/replace object, background, style,
text-to-image, layers, subject reference), write instructions, chain CUs into LCUs, apply the task mix, commit shards.
Partition names: img-00000, img-00001, ..."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from datagen.batch import ENTRIES, ITEM_PROPOSALS
from datagen.config import ConfigError, Recipe
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
from operators.edits.base import ProposalEdit
from operators.edits.layers import Layers
from operators.edits.object_proposals import ProposalConfig
from operators.edits.proposals import ObjectProposals
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


def object_proposals(recipe: Recipe, makers: list[Operator]) -> list[Operator]:
    """The makers with the object_proposals stage before the first that reads its proposals: one pass per photo
    for every edit that needs them, with the recipe's `object_proposals` settings (the defaults when it names none,
    as the demo does: its classical regions). The makers as they are when none reads them."""
    readers = [i for i, m in enumerate(makers) if ITEM_PROPOSALS in m.reads]
    if not readers:
        return makers
    cfg = recipe.operators.get(ObjectProposals.name)
    if cfg is not None and not cfg.enabled:
        names = ", ".join(makers[i].name for i in readers)
        raise ConfigError(f"operators.object_proposals is off, but {names} read its proposals: turn it on or them off")
    stage = ObjectProposals(cfg, seed=recipe.seed)
    return makers[: readers[0]] + [stage] + makers[readers[0] :]


def proposal_settings(recipe: Recipe) -> ProposalConfig:
    """The object_proposals stage's settings, which every edit reading its proposals records in its samples."""
    cfg = recipe.operators.get(ObjectProposals.name)
    return (cfg or ObjectProposals.Config()).settings()


def stages(recipe: Recipe) -> list[Operator]:
    proposals = proposal_settings(recipe)

    def op(cls: type[Operator]) -> Optional[Operator]:
        if issubclass(cls, ProposalEdit):
            return configured(recipe, cls, proposals=proposals)
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
        *object_proposals(recipe, makers),  # the makers, with one proposal pass per photo before the edits
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
