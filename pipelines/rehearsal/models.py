"""For every model a recipe names, a tiny checkpoint of the same architecture, built here and named in recipe
overrides, so the rehearsal loads each one through the operator's own loader. Settings that only make a model slower
without changing its code path (diffusion steps and resolution, SAM's point grid) shrink with it, and say so."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from datagen.config import Recipe


@dataclass
class Rehearsal:
    """What the rehearsal changes in a recipe: overrides (key=value), what each tiny model stands for, and notes."""

    root: Path
    overrides: list[str] = field(default_factory=list)
    models: list[tuple[str, str]] = field(default_factory=list)  # (recipe key, what it stands for)
    notes: list[str] = field(default_factory=list)
    worker_hooks: list[str] = field(default_factory=list)  # lines of a sitecustomize.py every Ray worker runs
    _built: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: Any) -> None:
        self.overrides.append(f"{key}={value}")

    def once(self, name: str, build: Callable[[Path], Any]) -> Any:
        """Build a tiny model once per rehearsal (several operators share SAM, OWLv2 and the diffusion pipelines)."""
        if name not in self._built:
            self._built[name] = build(self.root / name)
        return self._built[name]


def _enabled(recipe: Recipe, name: str) -> Any:
    cfg = recipe.operators.get(name)
    return cfg if cfg is not None and cfg.enabled else None


def _conditions(recipe: Recipe, r: Rehearsal) -> None:
    from pipelines.rehearsal import tiny_vision as tv

    for name, style in (("contour", "contour_style"), ("scribble", "anime_style")):
        c = _enabled(recipe, name)
        if c is not None and c.backend == "model":
            path = r.once(style, lambda d: tv.make_tiny_line_generator(d / "netG_A_latest.pth"))
            r.set(f"operators.{name}.checkpoint", path)
            r.models.append((f"operators.{name}.checkpoint", f"{c.checkpoint} (informative-drawings generator)"))
    c = _enabled(recipe, "doodle")
    if c is not None and c.backend == "model":
        r.set("operators.doodle.checkpoint", r.once("hed", lambda d: tv.make_tiny_hed(d / "ControlNetHED.pth")))
        r.models.append(("operators.doodle.checkpoint", f"{c.checkpoint} (HED)"))
    c = _enabled(recipe, "segmentation")
    if c is not None and c.backend == "model":
        r.set("operators.segmentation.checkpoint", r.once("sam", _tiny_sam))
        r.set("operators.segmentation.points_per_side", 4)
        r.models.append(("operators.segmentation.checkpoint", f"{c.checkpoint} (segment-anything)"))
        r.notes.append("segmentation: SAM's point grid 4x4 instead of the recipe's (same code path, fewer prompts)")
    c = _enabled(recipe, "depth")
    if c is not None and c.checkpoint:
        r.set("operators.depth.checkpoint", r.once("dpt", tv.make_tiny_dpt))
        r.models.append(("operators.depth.checkpoint", f"{c.checkpoint} (DPT depth)"))
    c = _enabled(recipe, "pose")
    if c is not None and c.model == "rtmpose" and c.checkpoint:
        keys = r.once("rtmlib", tv.make_tiny_rtmlib)
        for k in ("checkpoint", "det_checkpoint"):
            r.set(f"operators.pose.{k}", keys[k])
        r.set("operators.pose.pose_input_size", f"[{keys['pose_input_size'][0]}, {keys['pose_input_size'][1]}]")
        r.set("operators.pose.det_input_size", f"[{keys['det_input_size'][0]}, {keys['det_input_size'][1]}]")
        r.models.append(("operators.pose.checkpoint", f"{c.checkpoint} (RTMPose + YOLOX ONNX layouts)"))


EDIT_MAKERS = ("remove_object", "replace_object", "background_change", "layers", "subject_reference")


def _edits(recipe: Recipe, r: Rehearsal) -> None:
    from pipelines.rehearsal import tiny_vision as tv

    shrunk = False
    p = _enabled(recipe, "object_proposals")
    if p is not None and p.backend == "model":
        if p.detector:
            r.set("operators.object_proposals.detector", r.once("owlv2", tv.make_tiny_owlv2))
            r.models.append(("operators.object_proposals.detector", f"{p.detector} (OWLv2)"))
        if p.sam_checkpoint:
            r.set("operators.object_proposals.sam_checkpoint", r.once("sam", _tiny_sam))
            r.models.append(("operators.object_proposals.sam_checkpoint", f"{p.sam_checkpoint} (segment-anything)"))
            r.notes.append(
                f"segment-anything: the tiny SAM is trained for {SAM_STEPS} steps on synthetic images to give a box "
                "prompt the mask of an object filling the box (random weights gave noise over the whole photo, and "
                "every foreground matte covered it)"
            )
    for name in EDIT_MAKERS:
        c = _enabled(recipe, name)
        if c is None:
            continue
        inpaint = getattr(c, "inpaint", None)
        if inpaint is not None and inpaint.backend == "model" and getattr(c, "backend", "model") == "model":
            r.set(f"operators.{name}.inpaint.checkpoint", r.once("sd_inpaint", lambda d: tv.make_tiny_sd(d, True)))
            r.set(f"operators.{name}.inpaint.steps", 2)
            r.set(f"operators.{name}.inpaint.resolution", 64)
            r.models.append((f"operators.{name}.inpaint.checkpoint", f"{inpaint.checkpoint} (diffusers inpainting)"))
            shrunk = True
    c = _enabled(recipe, "style_transfer")
    if c is not None and c.backend == "model":
        r.set("operators.style_transfer.model.checkpoint", r.once("sd", lambda d: tv.make_tiny_sd(d, False)))
        r.set("operators.style_transfer.model.steps", 2)
        r.set("operators.style_transfer.model.resolution", 64)
        r.models.append(("operators.style_transfer.model.checkpoint", f"{c.model.checkpoint} (diffusers img2img)"))
        shrunk = True
    if shrunk:
        r.notes.append(
            "diffusion: 2 steps at 64 px on a tiny Stable Diffusion UNet (the recipe's pipelines may be SDXL: the "
            "same diffusers loader and operator code, a smaller architecture of the family)"
        )


def _features(recipe: Recipe, r: Rehearsal) -> None:
    from datagen.pairing import tiny_models
    from datagen.pairing.config import SCORE_FACE

    pairing = recipe.sections.get("pairing")
    if pairing is None or not pairing.enabled:
        return
    if pairing.encoder == "siglip_features":
        tiny = r.once("siglip", tiny_models.make_tiny_siglip)
        c = recipe.operators.get("siglip_features")
        r.set("operators.siglip_features.model", tiny["model"])
        r.set("operators.siglip_features.pretrained", tiny["local_dir"])
        r.models.append(("operators.siglip_features.pretrained", f"{c.pretrained if c else '?'} (open_clip SigLIP)"))
        # the tiny trunk is a timm architecture registered at run time, as a user's plugin package would
        r.worker_hooks.append("from datagen.pairing.tiny_models import register_tiny_siglip_trunk")
        r.worker_hooks.append("register_tiny_siglip_trunk()")
    _pairs(pairing, r)
    faces = recipe.operators.get("face_features")
    routes = getattr(pairing, "routes", None)
    face_on = routes is not None and any(rt.enabled and rt.score == SCORE_FACE for _, rt in routes.items())
    if face_on and faces is not None and faces.backend == "insightface":
        r.set("operators.face_features.model_pack", r.once("faces", tiny_models.make_tiny_face_pack))
        r.models.append(("operators.face_features.model_pack", f"{faces.model_pack} (insightface SCRFD + ArcFace)"))


PAIRS_PER_SET = 4


def _pairs(pairing: Any, r: Rehearsal) -> None:
    """A few unrelated photos, embedded by a SigLIP with random weights, make no pair under the recipe's bands (their
    cosines fall outside pass 1's band, ORB finds no shared object, and cleaning wants photos the rehearsal shrinks
    below its minimum side), so the pairs job would plan nothing and its stages never run. The rehearsal opens the
    bands instead: pass 1 links every photo of a cluster, the reference route keeps links from object score 0, a set
    gives at most a few pairs, and cleaning accepts the rehearsal's small photos. The pairs then mean nothing; they
    carry the pairs job, its instructions and its scores through the runtime."""
    r.set("pairing.pass1.band.low", -1.0)
    r.set("pairing.pass1.band.high", 1.0)
    r.set("pairing.pass1.band.include_high", "true")
    routes = getattr(pairing, "routes", None)
    if routes is not None and routes.reference_generation.enabled:
        r.set("pairing.routes.reference_generation.band.low", 0.0)
        r.set("pairing.routes.reference_generation.band.include_low", "true")
    r.set("pairing.max_pairs_per_set", PAIRS_PER_SET)
    r.set("pairing.clean.min_side", 64)
    r.notes.append(
        "pairing: tiny SigLIP embeddings and a few unrelated photos pair nothing under the recipe's bands, so pass 1 "
        "links every photo of a cluster (cosine band [-1, 1]), the reference route keeps links from object score 0, "
        f"a set gives at most {PAIRS_PER_SET} pairs and cleaning accepts 64 px sides: the pairs job runs every "
        "stage on pairs that mean nothing"
    )


def _scorers(recipe: Recipe, r: Rehearsal) -> None:
    from pipelines.rehearsal import tiny_scoring as ts

    c = _enabled(recipe, "clip_scores")
    if c is not None and c.pretrained:
        r.set("operators.clip_scores.pretrained", r.once("clip", lambda d: ts.build_tiny_clip(d)))
        r.models.append(("operators.clip_scores.pretrained", f"{c.pretrained} (open_clip CLIP)"))
        if c.aesthetic_checkpoint:
            path = r.once("aesthetic", lambda d: ts.build_tiny_aesthetic(_folder(d), dim=32))
            r.set("operators.clip_scores.aesthetic_checkpoint", path)
            r.models.append(("operators.clip_scores.aesthetic_checkpoint", f"{c.aesthetic_checkpoint} (LAION MLP)"))
    c = _enabled(recipe, "dino_score")
    if c is not None and c.checkpoint:
        r.set("operators.dino_score.checkpoint", r.once("dinov2", ts.build_tiny_dinov2))
        r.models.append(("operators.dino_score.checkpoint", f"{c.checkpoint} (DINOv2)"))


def _tiny_judge(folder: Path) -> Path:
    from pipelines.rehearsal import tiny_language as tl

    return tl.build_tiny_judge(folder, steps=200)


def _backend(r: Rehearsal, key: str, backend, vision: bool, judge: bool = False) -> None:
    """A chat backend of the recipe -> the transformers backend on a tiny model of the family, one device."""
    from pipelines.rehearsal import tiny_language as tl

    if judge:
        from pipelines.rehearsal.tiny_language import JUDGE_ANSWER

        model = r.once("internvl_judge", _tiny_judge)
        r.notes.append(
            f"{key}: a tiny InternVL trained for a few steps to answer {JUDGE_ANSWER!r} (the judge's parsing and "
            "scores run end to end; the scores mean nothing)"
        )
    else:
        model = r.once("internvl", tl.build_tiny_internvl) if vision else r.once("qwen2", tl.build_tiny_qwen2_lm)
    r.set(f"{key}.kind", "transformers")
    r.set(f"{key}.model", model)
    r.set(f"{key}.tensor_parallel_size", 1)
    r.set(f"{key}.max_new_tokens", 32 if judge else 24)
    was = f"{backend.kind} {backend.model}"
    r.models.append((f"{key}.model", f"{was} ({'InternVL' if vision else 'Qwen2'} through the transformers backend)"))
    if backend.kind != "transformers":
        r.notes.append(f"{key}: {backend.kind} runs as the transformers backend here (one device, same prompts)")


def _language(recipe: Recipe, r: Rehearsal) -> None:
    c = _enabled(recipe, "judge_scores")
    if c is not None:
        _backend(r, "operators.judge_scores.backend", c.backend, vision=True, judge=True)
    ins = recipe.sections.get("instructions")
    if ins is None:
        return
    if "captioner" in ins.methods:
        _backend(r, "instructions.captioner.backend", ins.captioner.backend, vision=True)
    if "rewrite" in ins.methods and ins.rewrite.rewriter == "llm":
        _backend(r, "instructions.rewrite.backend", ins.rewrite.backend, vision=False)
    if "outcome" in ins.methods:
        _backend(r, "instructions.outcome.backend", ins.outcome.backend, vision=True)
    if "mllm_difference" in ins.methods:
        _backend(r, "instructions.mllm_difference.backend", ins.mllm_difference.backend, vision=True)
        if ins.mllm_difference.writer is not None:
            _backend(r, "instructions.mllm_difference.writer", ins.mllm_difference.writer, vision=False)


def _folder(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


def _tiny_sam(folder: Path) -> Path:
    from pipelines.rehearsal.tiny_vision import make_tiny_sam, teach_box_masks

    folder.mkdir(parents=True, exist_ok=True)
    return teach_box_masks(make_tiny_sam(folder / "sam.pth"), steps=SAM_STEPS)


SAM_STEPS = 300


def _filter(recipe: Recipe, r: Rehearsal) -> None:
    """Tiny models score at random: the filter marks what it would drop instead of dropping it, so every stage after
    it still sees samples and the output holds every made sample with its marks."""
    if _enabled(recipe, "quality_filter") is not None:
        r.set("operators.quality_filter.keep_below_threshold", "true")
        r.set("operators.quality_filter.missing", "keep")
        r.notes.append(
            "quality_filter: marks samples outside the thresholds, and keeps those a tiny model left unscored, "
            "instead of dropping them (tiny models score at random)"
        )


BUILDERS: tuple[Callable[[Recipe, Rehearsal], None], ...] = (
    _conditions,
    _edits,
    _features,
    _scorers,
    _language,
    _filter,
)


def tiny_models_for(recipe: Recipe, root: Path) -> Rehearsal:
    """Build a tiny model for every model the recipe names and return the overrides that point at them."""
    r = Rehearsal(root)
    root.mkdir(parents=True, exist_ok=True)
    for build in BUILDERS:
        build(recipe, r)
    return r
