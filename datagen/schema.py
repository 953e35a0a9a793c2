"""The data contract: Condition Units (CU), Long-context CUs (LCU), their webdataset layout and index columns.
Every other module imports field names, member names and task names from here; nothing else defines them.

A CU (ACE, arXiv 2410.00086) is ``{T, V}``: an instruction T and input frames ``[[I1;M1] ... [IN;MN]]``
plus a target image. A mask is HxW uint8 where 255 means "edit this region"; a missing mask means all ones.
An LCU is an ordered list of CU turns, history first and the current turn last.

One webdataset sample per CU or LCU::

    KEY.json                 the record (schema, turns with their instruction records, provenance, judge,
                             threshold_failures); no pickle members, ever
    KEY.t0.in0.jpg           turn 0, input 0 (jpg/png/webp for photos; png for condition maps)
    KEY.t0.in0.mask.png      its mask, only when it is not all ones
    KEY.t0.target.jpg        turn 0 target (the last turn's target is the sample's target)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = "datagen.cu/1"

# Member naming --------------------------------------------------------------------------------------------
JSON_MEMBER = "json"
PHOTO_FORMATS = ("jpg", "png", "webp")
# Extensions that can never appear in a shard: they would be unpickled by some readers.
FORBIDDEN_EXTENSIONS = ("pyd", "pickle", "pkl", "pth", "pt", "npy", "npz")

# Frame roles decide the encoding: condition maps and masks are stored losslessly.
ROLE_PHOTO = "photo"
ROLE_CONDITION = "condition"
ROLES = (ROLE_PHOTO, ROLE_CONDITION)

# Directions of a task: a condition is used both ways (analysis: image -> map, generation: map -> image).
DIRECTION_ANALYSIS = "analysis"
DIRECTION_GENERATION = "generation"
DIRECTION_EDIT = "edit"
DIRECTION_REFERENCE = "reference"
DIRECTION_TEXT = "text"
DIRECTIONS = (DIRECTION_ANALYSIS, DIRECTION_GENERATION, DIRECTION_EDIT, DIRECTION_REFERENCE, DIRECTION_TEXT)

KIND_CU = "cu"
KIND_LCU = "lcu"


def input_member(turn: int, index: int, ext: str) -> str:
    return f"t{turn}.in{index}.{ext}"


def input_mask_member(turn: int, index: int) -> str:
    return f"t{turn}.in{index}.mask.png"


def target_member(turn: int, ext: str) -> str:
    return f"t{turn}.target.{ext}"


def target_mask_member(turn: int) -> str:
    return f"t{turn}.target.mask.png"


# Tasks (ACE taxonomy) ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    name: str  # ACE's task name; the value of the `task` field and index column
    group: str  # one of TASK_GROUPS
    direction: str


TASK_GROUPS = (
    "text_guided_generation",
    "low_level_analysis",
    "controllable_generation",
    "semantic_editing",
    "element_editing",
    "repainting",
    "layer_editing",
    "reference_generation",
    "multi_turn",
)

# condition id -> (analysis task name, generation task name). Names of analysis tasks follow ACE's code.
CONDITION_TASKS: dict[str, tuple[str, str]] = {
    "segmentation": ("Image Segmentation", "Segmentation-guided Generation"),
    "depth": ("Depth Estimation", "Depth-guided Generation"),
    "pose": ("Pose Estimation", "Pose-guided Generation"),
    "mosaic": ("Mosaic", "Image Demosaicing"),
    "degradation": ("Image Degradation", "Image Restoration"),
    "grayscale": ("Grayscale", "Image Colorization"),
    "canny": ("Edge map Extraction", "Edge-guided Generation"),
    "doodle": ("Doodle Extraction", "Doodle-guided Generation"),
    "contour": ("Contour Extraction", "Contour-guided Generation"),
    "scribble": ("Scribble Extraction", "Scribble-guided Generation"),
}

TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, group: str, direction: str) -> TaskSpec:
    if group not in TASK_GROUPS:
        raise ValueError(f"task group {group!r} not in {TASK_GROUPS}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} not in {DIRECTIONS}")
    spec = TASKS.get(name)
    if spec is not None and spec != TaskSpec(name, group, direction):
        raise ValueError(f"task {name!r} registered twice with different specs")
    TASKS[name] = TaskSpec(name, group, direction)
    return TASKS[name]


for _cond, (_ana, _gen) in CONDITION_TASKS.items():
    register_task(_ana, "low_level_analysis", DIRECTION_ANALYSIS)
    register_task(_gen, "controllable_generation", DIRECTION_GENERATION)
for _name, _group, _dir in (
    ("Inpainting", "repainting", DIRECTION_EDIT),
    ("Outpainting", "repainting", DIRECTION_EDIT),
    ("Facial Editing", "semantic_editing", DIRECTION_EDIT),
    ("Style Transfer", "semantic_editing", DIRECTION_EDIT),
    ("Add Object", "element_editing", DIRECTION_EDIT),
    ("Remove Object", "element_editing", DIRECTION_EDIT),
    ("General Editing", "element_editing", DIRECTION_EDIT),
    ("Reference Generation", "reference_generation", DIRECTION_REFERENCE),
    ("Text-to-Image", "text_guided_generation", DIRECTION_TEXT),
    ("Multi-turn Editing", "multi_turn", DIRECTION_EDIT),
    # synthesized from one photo (issue 12): element, semantic and layer edits
    ("Replace Object", "element_editing", DIRECTION_EDIT),
    ("Background Change", "semantic_editing", DIRECTION_EDIT),
    # layer tasks: a layer is a photo frame whose mask is its alpha (255 = the layer's pixels)
    ("Layer Decomposition", "layer_editing", DIRECTION_EDIT),
    ("Layer Fusion", "layer_editing", DIRECTION_EDIT),
):
    register_task(_name, _group, _dir)


def condition_task(condition: str, direction: str) -> str:
    """The ACE task name for a low-level condition used in one direction."""
    analysis, generation = CONDITION_TASKS[condition]
    if direction == DIRECTION_ANALYSIS:
        return analysis
    if direction == DIRECTION_GENERATION:
        return generation
    raise ValueError(f"condition direction must be analysis or generation, got {direction!r}")


# Image indicators ------------------------------------------------------------------------------------------
INDICATOR_RE = re.compile(r"\{image(\d?)\}")


def indicators(text: str) -> list[str]:
    """Indicators in order of appearance: '' for ``{image}``, '1'..'9' for ``{imageN}``."""
    return INDICATOR_RE.findall(text)


def indicator_problems(text: str, n_images: int) -> list[str]:
    """Why the indicators of `text` do not fit a sample with `n_images` input images (empty when they do).

    ``{image}`` is the current input and needs at least one input; ``{imageN}`` needs N <= n_images.
    ``{image0}`` does not exist in ACE's convention.
    """
    problems = []
    for ref in indicators(text):
        if ref == "":
            if n_images < 1:
                problems.append("{image} used but the sample has no input image")
        else:
            n = int(ref)
            if n < 1 or n > n_images:
                problems.append(f"{{image{n}}} used but the sample has {n_images} input image(s)")
    return problems


def rewrite_history_indicator(text: str, turn_index: int) -> str:
    """ACE's chat convention: in turn i>0 of a chain, an earlier turn's ``{image}`` becomes ``{image<i>}``."""
    if turn_index <= 0:
        return text
    return text.replace("{image}", "{image%d}" % turn_index)


# How an instruction was made ---------------------------------------------------------------------------------
# values of Turn.instruction_method (and InstructionRecord.method)
METHOD_TEMPLATE = "template"
METHOD_RULE_REWRITE = "rule_rewrite"  # the classical paraphraser, never reported as an LLM
METHOD_LLM_REWRITE = "llm_rewrite"
METHOD_CAPTIONER = "captioner"
METHOD_MLLM_DIFFERENCE = "mllm_difference"
METHOD_FALLBACK_TEMPLATE = "fallback_template"  # a model stage failed: the template instruction stays
METHOD_OUTCOME = "outcome"  # a VLM rewrote a kept sample's instruction from what its output shows
INSTRUCTION_METHODS = (
    METHOD_TEMPLATE,
    METHOD_RULE_REWRITE,
    METHOD_LLM_REWRITE,
    METHOD_CAPTIONER,
    METHOD_MLLM_DIFFERENCE,
    METHOD_FALLBACK_TEMPLATE,
    METHOD_OUTCOME,
)
# Emu Edit's instruction record (arXiv 2311.10089), kept where a maker or an instruction stage knows it
EMU_FIELDS = ("edit", "edited_object", "output", "original_object")
# provenance.params keys of a synthesized edit (part of its key: what the maker drew): its Emu Edit record, and the
# words its instruction must name ({object}, {new_object}, {style}, {background}, {layer} slots of the template bank)
PARAM_EMU_EDIT = "emu_edit"
PARAM_SLOTS = "slots"


def _non_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", None) and v != [] and v != {}}


@dataclass
class InstructionRecord:
    """How one turn's instruction was made (Turn.instruction_record); every field is optional, a stage fills what it
    knows. Not part of the sample key: the instruction is derived from the sample's content and the recipe."""

    method: str = ""  # one of INSTRUCTION_METHODS
    template: str = ""  # the template bank line ("TASK#n")
    source: str = ""  # the instruction a later stage replaced (the template a rewrite started from)
    alternates: list[str] = field(default_factory=list)  # every rewrite kept; an LCU turn may say the CU this way
    rewriter: str = ""
    checks: dict[str, float] = field(default_factory=dict)  # the similarity bounds the kept rewrites passed
    model: str = ""  # the model that wrote or tried to write the instruction
    fallback: str = ""  # why a model stage kept the template
    tried: str = ""  # the method that fell back
    answer: str = ""  # the start of a model answer that could not be used
    differences: str = ""  # an MLLM's description of what differs between input and target
    emu_edit: dict[str, str] = field(default_factory=dict)  # Emu Edit's record, EMU_FIELDS
    slots: dict[str, str] = field(default_factory=dict)  # the words a synthesized edit's instruction names
    instruction_original: str = ""  # the instruction before the outcome stage said what the output shows

    def to_json(self) -> dict[str, Any]:
        return _non_empty(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "InstructionRecord":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class JudgeRecord:
    """What the vision-language judge said of a sample (Sample.judge) besides its scores."""

    model: str = ""
    reason: str = ""  # the judge's words on its scores (one sentence)
    fallback: str = ""  # why it gave no scores (unparsable answer, backend error)
    answer: str = ""  # the start of an answer that could not be parsed
    prompt: str = ""  # the name(s) of the prompt template(s) asked ("datagen/edit", "editscore/semantics+...")
    prompt_hash: str = ""  # sha256 of each template, 12 hex digits ("+"-joined like `prompt`)
    settings: dict[str, Any] = field(default_factory=dict)  # decoding and image settings, the image sizes sent
    passes: int = 0  # how many times the judge was asked
    answered: int = 0  # how many of the passes gave readable scores (their mean is the score)
    spread: dict[str, float] = field(default_factory=dict)  # per axis and overall: std over the passes
    pass_overall: list[float] = field(default_factory=list)  # each pass's overall, when there were several

    def to_json(self) -> dict[str, Any]:
        d = _non_empty(dataclasses.asdict(self))
        return {k: v for k, v in d.items() if not (k in ("passes", "answered") and v == 0)}  # 0: not recorded

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "JudgeRecord":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


# In-memory records -----------------------------------------------------------------------------------------
@dataclass
class Frame:
    """One image of a CU with its mask. image: HxWx3 uint8 RGB; mask: HxW uint8 (255 = edit) or None = all ones."""

    image: np.ndarray
    mask: np.ndarray | None = None
    role: str = ROLE_PHOTO

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 uint8, got {self.image.dtype} {self.image.shape}")
        if self.mask is not None:
            if self.mask.dtype != np.uint8 or self.mask.shape != self.image.shape[:2]:
                raise ValueError(
                    f"Frame.mask must be HxW uint8 matching the image, got {self.mask.dtype} {self.mask.shape}"
                )
            if bool((self.mask == 255).all()):
                self.mask = None  # all ones is the default; do not store it
        if self.role not in ROLES:
            raise ValueError(f"Frame.role must be one of {ROLES}, got {self.role!r}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def mask_or_ones(self) -> np.ndarray:
        if self.mask is None:
            return np.full(self.image.shape[:2], 255, np.uint8)
        return self.mask


@dataclass
class Turn:
    """One Condition Unit: instruction, ordered inputs (each with a mask), target, and what task made it."""

    task: str
    direction: str
    inputs: list[Frame]
    target: Frame
    instruction: str = ""
    instruction_method: str = ""  # one of INSTRUCTION_METHODS
    caption: str = ""  # a caption of the target, when known; the instruction stage may use it
    instruction_record: InstructionRecord = field(default_factory=InstructionRecord)  # how the instruction was made

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known tasks: {sorted(TASKS)}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


@dataclass
class Provenance:
    """Where a sample came from and how: enough to reproduce it or drop everything one rule made."""

    sources: list[str]  # source URIs, in input order
    source_ids: list[str]  # content digests of the sources
    operator: str
    operator_version: str
    params: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    recipe: str = ""  # recipe fingerprint
    variant: int = 0  # index when one operator makes several samples from the same sources

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "source_ids": list(self.source_ids),
            "operator": self.operator,
            "operator_version": self.operator_version,
            "params": self.params,
            "scores": self.scores,
            "recipe": self.recipe,
            "variant": self.variant,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Provenance":
        return cls(
            sources=list(d["sources"]),
            source_ids=list(d["source_ids"]),
            operator=d["operator"],
            operator_version=d["operator_version"],
            params=dict(d.get("params", {})),
            scores={k: float(v) for k, v in d.get("scores", {}).items()},
            recipe=d.get("recipe", ""),
            variant=int(d.get("variant", 0)),
        )


@dataclass
class RejectRecord:
    """Why the recipe's rules dropped a sample: the stage (quality_filter, task_mix, ...) and its reasons, each a
    failed rule as 'CODE' or 'CODE: detail' (no_change: pixel_l1_inside<0.01, nsfw>0.8, over mix: Inpainting)."""

    stage: str
    reasons: list[str]

    @property
    def reason(self) -> str:
        """The reason the funnel counts the sample under: the code of its first reason."""
        return reject_reason(self.reasons[0]) if self.reasons else "unknown"

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RejectRecord":
        return cls(stage=d["stage"], reasons=list(d.get("reasons") or []))


def reject_reason(reason: str) -> str:
    """A reason's code: the part before ': ' ('no_change: pixel_l1_inside<0.01' -> 'no_change')."""
    return reason.split(": ", 1)[0]


@dataclass
class Sample:
    """A CU (one turn) or an LCU (several turns, history first). The last turn is the current one.
    The key names the sample's content (provenance.params holds only what defines it); what later stages say of it
    (instruction records, scores in provenance.scores, the judge's words, failed thresholds) is kept beside it."""

    turns: list[Turn]
    provenance: Provenance
    key: str = ""
    judge: JudgeRecord | None = None  # the vision-language judge's record, when it judged the sample
    threshold_failures: list[str] = field(default_factory=list)  # the quality filter's failed rules, when it marks
    # set on a sample the recipe's rules dropped (written to OUT/rejects/, never to the training shards): the stage
    # that dropped it and every reason, the funnel's reason first (reject_reason)
    rejected: RejectRecord | None = None
    # scores a scorer that applies to the current turn failed to make (an error, a fallback answer, a value that is
    # not a number): the quality filter drops on them (score_missing). In flight only, never written to a shard; a
    # score that does not apply to the turn (text-to-image has no input) is never listed here
    unscored: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a sample needs at least one turn")
        if not self.key:
            self.key = sample_key(self.provenance, [(t.task, t.direction) for t in self.turns])

    @property
    def kind(self) -> str:
        return KIND_CU if len(self.turns) == 1 else KIND_LCU

    @property
    def current(self) -> Turn:
        return self.turns[-1]

    @property
    def task(self) -> str:
        return self.current.task

    @property
    def direction(self) -> str:
        return self.current.direction

    def n_images_visible(self, turn_index: int) -> int:
        """Input images visible to a turn's instruction: all inputs of history turns plus its own."""
        return sum(len(t.inputs) for t in self.turns[: turn_index + 1])

    def indicator_problems(self) -> list[str]:
        out = []
        for i, t in enumerate(self.turns):
            for p in indicator_problems(t.instruction, self.n_images_visible(i)):
                out.append(f"turn {i}: {p}")
        return out


def sample_key(provenance: Provenance, turn_tasks: Iterable[tuple[str, str]]) -> str:
    """Stable key from content and recipe: same sources, operator, parameters and recipe give the same key."""
    payload = json.dumps(
        {
            "source_ids": provenance.source_ids,
            "operator": provenance.operator,
            "version": provenance.operator_version,
            "params": provenance.params,
            "recipe": provenance.recipe,
            "variant": provenance.variant,
            "turns": list(turn_tasks),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def content_id(data: bytes, name: str = "") -> str:
    """Identity of a source image: its raw bytes and its name relative to the input root (so two copies under
    different names are two sources, while moving the whole collection keeps every key)."""
    return hashlib.sha1(data + b"\0" + name.encode()).hexdigest()


# Quality scores (issue 13) -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreSpec:
    """One score a sample may carry in provenance.scores under `name`, and as the index column score_<name>."""

    name: str
    low: float  # the score's range, for colouring and histograms
    high: float
    better: str  # "high" or "low": which end a reviewer wants; "" when neither end is better in itself
    what: str


SCORES: dict[str, ScoreSpec] = {
    s.name: s
    for s in (
        # pairing (pairs job): pass-1 encoder cosine and the route's task score
        ScoreSpec("pass1", -1.0, 1.0, "high", "pairing pass 1: encoder cosine of the two photos"),
        ScoreSpec("pass2", -1.0, 1.0, "high", "pairing pass 2: the route's task score (face cosine, object inliers)"),
        # pixel level: the current turn's first input against its target (the input resized to the target when they
        # differ)
        ScoreSpec("pixel_l1", 0.0, 1.0, "", "mean absolute difference of input and target, 0-1"),
        ScoreSpec("pixel_l1_inside", 0.0, 1.0, "", "mean absolute difference inside the edit mask, 0-1"),
        ScoreSpec("pixel_l1_outside", 0.0, 1.0, "low", "mean absolute difference outside the edit mask, 0-1"),
        ScoreSpec("pixel_ssim", -1.0, 1.0, "", "SSIM (Wang et al. 2004, Gaussian window) of input and target"),
        ScoreSpec("pixel_ssim_inside", -1.0, 1.0, "", "SSIM inside the edit mask"),
        ScoreSpec(
            "pixel_ssim_outside", -1.0, 1.0, "high", "SSIM outside the edit mask, where its window does not reach in"
        ),
        ScoreSpec("mask_area", 0.0, 1.0, "", "share of the input's pixels inside its edit mask"),
        # the outside region by a model: the inside of the mask painted out of both images, then compared
        ScoreSpec("dino_outside", -1.0, 1.0, "high", "DINOv2 CLS cosine of input and target outside the edit mask"),
        # embeddings (open_clip SigLIP/CLIP, DINOv2)
        ScoreSpec("clip_text", -1.0, 1.0, "high", "cosine of the target image and its caption (or the instruction)"),
        ScoreSpec("clip_image", -1.0, 1.0, "high", "cosine of input and target image embeddings"),
        ScoreSpec(
            "clip_direction", -1.0, 1.0, "high", "cosine of the image change and the caption change (InstructPix2Pix)"
        ),
        ScoreSpec("dino_image", -1.0, 1.0, "high", "DINOv2 CLS cosine of input and target"),
        # safety and beauty
        ScoreSpec("nsfw", 0.0, 1.0, "low", "open_nsfw probability, the largest over the turn's photos"),
        ScoreSpec("aesthetic", 0.0, 10.0, "high", "LAION improved-aesthetic predictor on the target's CLIP embedding"),
        # a vision-language judge on three axes, 0-10 (docs/judging.md)
        ScoreSpec("judge_following", 0.0, 10.0, "high", "judge: does the target carry out the instruction"),
        ScoreSpec("judge_preservation", 0.0, 10.0, "high", "judge: is everything the instruction leaves alone kept"),
        ScoreSpec("judge_quality", 0.0, 10.0, "high", "judge: is the target natural and free of artefacts"),
        ScoreSpec(
            "judge_semantics", 0.0, 10.0, "high", "judge: min(following, preservation), VIEScore's semantic score"
        ),
        ScoreSpec("judge_overall", 0.0, 10.0, "high", "judge: sqrt(min(following, preservation) x quality)"),
        ScoreSpec("judge_spread", 0.0, 10.0, "low", "judge: std of the overall over its passes (passes > 1)"),
        # the quality filter's mark when it keeps failing samples (keep_below_threshold)
        ScoreSpec("failed_thresholds", 0.0, 10.0, "low", "number of recipe thresholds the sample fails"),
    )
}
SCORE_COLUMN_PREFIX = "score_"


def score_column(name: str) -> str:
    """The index column of a score: score_<name>, float32, null when the sample has no such score."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; known scores: {sorted(SCORES)}")
    return SCORE_COLUMN_PREFIX + name


# The parquet index -------------------------------------------------------------------------------------------
INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("kind", pa.string()),
        ("task", pa.string()),
        ("task_group", pa.string()),
        ("direction", pa.string()),
        ("n_turns", pa.int32()),
        ("n_inputs", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("instruction", pa.string()),
        ("instruction_method", pa.string()),
        ("sources", pa.list_(pa.string())),
        ("operator", pa.string()),
        ("operator_version", pa.string()),
        ("params", pa.string()),  # JSON
        ("scores", pa.string()),  # JSON
        ("bytes", pa.int64()),
    ]
    # one nullable float column per known score, so reviewers filter with plain column predicates
    + [(SCORE_COLUMN_PREFIX + name, pa.float32()) for name in SCORES]
)
INDEX_COLUMNS = tuple(INDEX_SCHEMA.names)

# A reject's index (OUT/rejects/NAME.parquet): the index columns, then why the recipe's rules dropped it
REJECT_COLUMNS = [
    ("rejected_by", pa.string()),  # the stage that dropped it
    ("reason", pa.string()),  # the funnel's reason (RejectRecord.reason)
    ("reasons", pa.list_(pa.string())),  # every failed rule
]
REJECTS_INDEX_SCHEMA = pa.schema(list(INDEX_SCHEMA) + [pa.field(n, t) for n, t in REJECT_COLUMNS])

QUARANTINE_SCHEMA = pa.schema(
    [("uri", pa.string()), ("reason", pa.string()), ("stage", pa.string()), ("detail", pa.string())]
)

# Pairing artefacts (issue 3) -------------------------------------------------------------------------------
# OUT/features/feat-NNNNN.parquet: one row per decoded source image, keyed by source_id.
FEATURES_DIR = "features"
FEATURES_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("uri", pa.string()),
        ("entry", pa.string()),  # JSON: how to fetch the image again (uri, rel, tar member)
        ("caption", pa.string()),
        ("width", pa.int32()),  # original size, before any downscaling
        ("height", pa.int32()),
        ("encoder", pa.string()),  # what made `embedding` (operator describe line)
        ("embedding", pa.list_(pa.float16())),  # L2-normalised
        ("face_count", pa.int16()),  # -1: faces not detected for this run
        ("face_embedding", pa.list_(pa.float16())),  # L2-normalised ArcFace embedding; null unless exactly one face
        ("keypoints", pa.binary()),  # float32 x,y pairs (object consistency)
        ("descriptors", pa.binary()),  # uint8 ORB descriptors, 32 bytes each
        ("dhash", pa.binary()),  # 256-bit difference hash (near-duplicate cleaning)
        ("edges", pa.binary()),  # packed bits of a 96 x 96 edge map (object consistency's fallback: shape vs template)
    ]
)
# OUT/pairs.parquet: every kept pair; one row group per partition of the pairs job.
PAIRS_FILE = "pairs.parquet"
PAIRS_SCHEMA = pa.schema(
    [
        ("uri_a", pa.string()),  # input image
        ("uri_b", pa.string()),  # target image
        ("source_id_a", pa.string()),
        ("source_id_b", pa.string()),
        ("entry_a", pa.string()),
        ("entry_b", pa.string()),
        ("caption_a", pa.string()),
        ("caption_b", pa.string()),
        ("task", pa.string()),
        ("route", pa.string()),  # the pairing route (task score + band) that made the set
        ("set_id", pa.string()),
        ("set_size", pa.int32()),
        ("cluster", pa.int32()),
        ("linked", pa.bool_()),  # True: the pair is itself a kept link; False: joined through the set
        ("score_pass1", pa.float32()),  # encoder cosine
        ("score_pass2", pa.float32()),  # the route's task score (NaN for routes without one)
    ]
)


@dataclass(frozen=True)
class PairRow:
    """One row of PAIRS_SCHEMA, as the pairs job's stages read it (WorkBatch.pairs): same fields, same order."""

    uri_a: str
    uri_b: str
    source_id_a: str
    source_id_b: str
    entry_a: str
    entry_b: str
    caption_a: str
    caption_b: str
    task: str
    route: str
    set_id: str
    set_size: int
    cluster: int
    linked: bool
    score_pass1: float
    score_pass2: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "PairRow":
        return cls(**{name: row[name] for name in PAIRS_SCHEMA.names})


@dataclass
class PhotoFeatures:
    """A photo's pairing features (SourceImage.features), as FEATURES_SCHEMA stores them: each feature operator fills
    its own fields and leaves the others None; the features job's last stage writes them out."""

    embedding: np.ndarray | None = None  # float32, L2-normalised
    encoder: str | None = None  # what made `embedding` (operator describe line)
    face_count: int | None = None  # None: faces not detected for this run (stored as -1)
    face_embedding: np.ndarray | None = None  # L2-normalised; None unless exactly one face
    keypoints: bytes | None = None  # float32 x,y pairs
    descriptors: bytes | None = None  # uint8 ORB descriptors, 32 bytes each
    dhash: bytes | None = None  # 256-bit difference hash
    edges: bytes | None = None  # packed bits of a 96 x 96 edge map

    def merge(self, other: "PhotoFeatures") -> None:
        """Take the fields `other` has (not None): one operator's results added to the photo's features."""
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)


# the photo features a feature operator may write: the PhotoFeatures fields, each also a FEATURES_SCHEMA column
PHOTO_FEATURES = tuple(f.name for f in fields(PhotoFeatures))


@dataclass
class ObjectProposal:
    """One object a photo holds (SourceImage.proposals, written once per photo by the object_proposals stage and read
    by every edit that removes, replaces or cuts out an object): its mask, a name an instruction can use, and where
    and how large it is."""

    mask: np.ndarray  # HxW uint8, 255 = the object
    noun: str  # "dark object", "cat"
    place: str  # "in the lower left"
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    area: float  # share of the image
    extra: dict[str, Any] = field(default_factory=dict)  # how it was found (method, contrast, ...)

    @property
    def definite(self) -> str:
        return f"the {self.noun} {self.place}".strip()

    @property
    def indefinite(self) -> str:
        article = "an" if self.noun[:1].lower() in "aeiou" else "a"
        return f"{article} {self.noun} {self.place}".strip()

    def record(self) -> dict[str, Any]:
        """What a sample's provenance keeps of the object (no mask: the sample's own frames hold it)."""
        return {
            "name": self.definite,
            "box": list(self.box),
            "area": round(self.area, 4),
            "score": round(self.score, 4),
            **self.extra,
        }
