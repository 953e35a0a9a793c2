"""Every operator a recipe may name under `operators:`, and the recipe sections beyond the core's, listed by hand:
adding an operator means adding it here and to the stage list of the job that runs it (pipelines/*.py)."""

from __future__ import annotations

from datagen.config import Catalog
from datagen.operator import Operator
from datagen.pairing.config import PairingConfig
from operators.assembly.lcu_chains import LcuChains
from operators.assembly.task_mix import TaskMix
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
from operators.edits.proposals import ObjectProposals
from operators.edits.remove_object import RemoveObject
from operators.edits.replace_object import ReplaceObject
from operators.edits.style_transfer import StyleTransfer
from operators.edits.subject_reference import SubjectReference
from operators.edits.text_to_image import TextToImage
from operators.features.classical import ClassicalFeatures
from operators.features.dhash import ImageDHash
from operators.features.faces import FaceFeatures
from operators.features.mobilenet import MobileNetFeatures
from operators.features.object_keypoints import ObjectKeypoints
from operators.features.siglip import SiglipFeatures
from operators.instructions.config import InstructionsConfig
from operators.scoring.quality_filter import QualityFilter
from pipelines.scoring import SCORERS

# The ten low-level conditions in the brief's order (each used both ways), then repainting.
CONDITIONS: tuple[type[Operator], ...] = (
    Segmentation,
    Depth,
    Pose,
    Mosaic,
    Degradation,
    Grayscale,
    Canny,
    Doodle,
    Contour,
    Scribble,
)
# Edits synthesized from one photo (issue 12): element, semantic, text-guided, layer editing and subject references.
SYNTHESIZED: tuple[type[Operator], ...] = (
    RemoveObject,
    ReplaceObject,
    BackgroundChange,
    StyleTransfer,
    TextToImage,
    Layers,
    SubjectReference,
)
CONDITION_MAKERS: tuple[type[Operator], ...] = (*CONDITIONS, Repainting)
# Every maker of the images job.
MAKERS: tuple[type[Operator], ...] = (*CONDITION_MAKERS, *SYNTHESIZED)
# Pairing: the encoders a recipe may name as pairing.encoder, and the per-image features the routes need.
ENCODERS: dict[str, type[Operator]] = {cls.name: cls for cls in (ClassicalFeatures, SiglipFeatures, MobileNetFeatures)}
FEATURES: tuple[type[Operator], ...] = (*ENCODERS.values(), ObjectKeypoints, FaceFeatures, ImageDHash)

OPERATORS: dict[str, type[Operator]] = {
    cls.name: cls for cls in (*MAKERS, ObjectProposals, LcuChains, TaskMix, *FEATURES, *SCORERS, QualityFilter)
}

CATALOG = Catalog(
    operators={name: cls.Config for name, cls in OPERATORS.items()},
    sections={"instructions": InstructionsConfig, "pairing": PairingConfig},
)
