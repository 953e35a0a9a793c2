"""Every operator a recipe may name under `operators:`, and the recipe sections beyond the core's, listed by hand:
adding an operator means adding it here and to the stage list of the job that runs it (pipelines/*.py)."""
from __future__ import annotations

from datagen.config import Catalog
from datagen.operator import Operator
from datagen.pairing.config import PairingConfig
from operators.background_change import BackgroundChange
from operators.canny import Canny
from operators.contour import Contour
from operators.degradation import Degradation
from operators.depth import Depth
from operators.doodle import Doodle
from operators.face_features import FaceFeatures
from operators.features_classical import ClassicalFeatures
from operators.features_dhash import ImageDHash
from operators.features_mobilenet import MobileNetFeatures
from operators.features_siglip import SiglipFeatures
from operators.grayscale import Grayscale
from operators.instructions.config import InstructionsConfig
from operators.layers import Layers
from operators.lcu_chains import LcuChains
from operators.mosaic import Mosaic
from operators.object_consistency import ObjectKeypoints
from operators.pose import Pose
from operators.quality_filter import QualityFilter
from operators.remove_object import RemoveObject
from operators.repainting import Repainting
from operators.replace_object import ReplaceObject
from operators.scribble import Scribble
from operators.segmentation import Segmentation
from operators.style_transfer import StyleTransfer
from operators.subject_reference import SubjectReference
from operators.task_mix import TaskMix
from operators.text_to_image import TextToImage
from pipelines.scoring import SCORERS

# The ten low-level conditions in the brief's order (each used both ways), then repainting.
CONDITIONS: tuple[type[Operator], ...] = (
    Segmentation, Depth, Pose, Mosaic, Degradation, Grayscale, Canny, Doodle, Contour, Scribble,
)
# Edits synthesized from one photo (issue 12): element, semantic, text-guided, layer editing and subject references.
SYNTHESIZED: tuple[type[Operator], ...] = (RemoveObject, ReplaceObject, BackgroundChange, StyleTransfer, TextToImage, Layers,
                                          SubjectReference)
CONDITION_MAKERS: tuple[type[Operator], ...] = (*CONDITIONS, Repainting)
# Every maker of the images job.
MAKERS: tuple[type[Operator], ...] = (*CONDITION_MAKERS, *SYNTHESIZED)
# Pairing: the encoders a recipe may name as pairing.encoder, and the per-image features the routes need.
ENCODERS: dict[str, type[Operator]] = {cls.name: cls for cls in (ClassicalFeatures, SiglipFeatures, MobileNetFeatures)}
FEATURES: tuple[type[Operator], ...] = (*ENCODERS.values(), ObjectKeypoints, FaceFeatures, ImageDHash)

OPERATORS: dict[str, type[Operator]] = {cls.name: cls for cls in (*MAKERS, LcuChains, TaskMix, *FEATURES, *SCORERS, QualityFilter)}

CATALOG = Catalog(
    operators={name: cls.Config for name, cls in OPERATORS.items()},
    sections={"instructions": InstructionsConfig, "pairing": PairingConfig},
)
