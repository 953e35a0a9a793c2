"""ace_full's LLM stages start and keep every sample: its `instructions` section, with only `backend.kind` and
`backend.model` changed to the transformers backend and tiny models made here (an InternVL for the captioner, a
2-layer Qwen2 text LLM for the rewriter), builds both stages; they load through transformers' normal loaders and
every sample of a batch of real photos ends with an instruction (the model's, or its template, counted).
The vLLM argument builders are pure functions: checked here without vLLM, a text-only model and a stage that
sends no images get no multimodal argument."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from datagen.batch import WorkBatch
from datagen.config import load_yaml
from datagen.schema import Frame, Provenance, Sample, Turn
from operators.instructions.captioner import CaptionerInstructions
from operators.instructions.config import InstructionsConfig
from operators.instructions.rewrites import RewriteInstructions
from operators.instructions.templates import TemplateInstructions
from operators.models.backends.base import BackendConfig, ChatRequest, make_backend, modality_from_config
from operators.models.backends.vllm_local import MULTIMODAL_ENGINE_KWARGS, VLLMBackend, engine_kwargs, sampling_kwargs

ACE_FULL = Path(__file__).resolve().parents[3] / "configs" / "ace_full.yaml"


def ace_full_instructions(captioner_model: str | None = None, rewriter_model: str | None = None) -> InstructionsConfig:
    """ace_full's `instructions` section as written, with only the backends' kind and model overridden."""
    raw = load_yaml(ACE_FULL.read_text(), str(ACE_FULL))["instructions"]
    if captioner_model is not None:
        raw["captioner"]["backend"].update(kind="transformers", model=captioner_model)
    if rewriter_model is not None:
        raw["rewrite"]["backend"].update(kind="transformers", model=rewriter_model)
    return InstructionsConfig.model_validate(raw)


def _photos(photo_paths, n: int, side: int = 128) -> list[np.ndarray]:
    out = []
    for p in photo_paths[:n]:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        s = side / max(bgr.shape[:2])
        bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def _batch(photo_paths) -> WorkBatch:
    """Natural pairs of real photos (the captioner's tasks) and grayscale -> photo pairs (a condition task that
    only the rewriter touches), templates filled like the pipeline does before the model stages."""
    photos = _photos(photo_paths, 6)
    batch = WorkBatch("img-00000", {}, seed=0, recipe="ace_full")
    caps = [
        "an astronaut in a white suit",
        "a cup of coffee",
        "a brick wall",
        "a rocket on its pad",
        "a cat",
        "a flower",
    ]
    for k in range(3):
        a, b = photos[k], photos[k + 3]
        task, direction = [
            ("General Editing", "edit"),
            ("Reference Generation", "reference"),
            ("Facial Editing", "edit"),
        ][k]
        turn = Turn(task, direction, [Frame(a)], Frame(b), caption=caps[k + 3])
        batch.samples.append(
            Sample([turn], Provenance([f"file:///a{k}.png", f"file:///b{k}.png"], [f"a{k}", f"b{k}"], "pairs", "1"))
        )
    for k, im in enumerate(photos[:4]):
        gray = np.repeat(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        turn = Turn("Image Colorization", "generation", [Frame(gray)], Frame(im), caption=caps[k])
        batch.samples.append(Sample([turn], Provenance([f"file:///c{k}.png"], [f"c{k}"], "grayscale", "1")))
    TemplateInstructions()(batch)
    return batch


def _fallbacks(batch: WorkBatch, stage: str) -> int:
    return sum(v for k, v in batch.stats[stage].skipped.items() if k.startswith("fallback_template:"))


def test_ace_full_captioner_and_rewriter_start_on_transformers(tiny_internvl, tiny_text_llm, photo_paths):
    cfg = ace_full_instructions(str(tiny_internvl), str(tiny_text_llm))
    assert cfg.captioner.backend.kind == cfg.rewrite.backend.kind == "transformers"
    assert cfg.rewrite.rewriter == "llm" and cfg.rewrite.backend.temperature > 0  # the rest is ace_full as written

    captioner = CaptionerInstructions(cfg.captioner)
    rewriter = RewriteInstructions(cfg.rewrite)
    assert captioner.unavailable_reason() is None and rewriter.unavailable_reason() is None
    # device auto with no GPU asked for: no GPU reserved, CPU here
    assert captioner.resources().num_gpus == 0 and rewriter.resources().num_gpus == 0
    captioner.setup()
    rewriter.setup()
    assert (
        captioner.backend.modality == "image_text"
        and type(captioner.backend.model).__name__ == "InternVLForConditionalGeneration"
    )
    assert rewriter.backend.modality == "text" and type(rewriter.backend.model).__name__ == "Qwen2ForCausalLM"
    assert captioner.backend.device == rewriter.backend.device == "cpu"
    assert "AutoModelForCausalLM" in rewriter.describe()

    batch = _batch(photo_paths)
    keys = [s.key for s in batch.samples]
    templates = [s.current.instruction for s in batch.samples]
    captioner.process(batch)
    rewriter.process(batch)

    assert [s.key for s in batch.samples] == keys  # none lost, none added
    methods = [s.current.instruction_method for s in batch.samples]
    natural, condition = methods[:3], methods[3:]
    assert set(natural) <= {"captioner", "fallback_template"}
    assert set(condition) <= {"llm_rewrite", "fallback_template"}
    # every fallback is counted by the stage that fell back, and keeps the template text
    assert natural.count("fallback_template") == _fallbacks(batch, "captioner_instructions")
    assert condition.count("fallback_template") == _fallbacks(batch, "rewrite_instructions")
    for s, template, method in zip(batch.samples, templates, methods):
        assert s.current.instruction.strip()
        rec = s.turns[0].instruction_record
        if method == "fallback_template":
            assert s.current.instruction == template and rec.fallback
        assert s.indicator_problems() == []
    # both models answered: a fallback is a refused answer, never a backend error
    cap_reasons = [k for k in batch.stats["captioner_instructions"].skipped if k.startswith("fallback_template:")]
    assert all(k.startswith("fallback_template:unusable:") for k in cap_reasons), cap_reasons
    rw_reasons = [k for k in batch.stats["rewrite_instructions"].skipped if k.startswith("fallback_template:")]
    assert set(rw_reasons) <= {"fallback_template:no_usable_rewrite"}, rw_reasons


def test_text_backend_answers_text_and_refuses_images_per_request(tiny_text_llm):
    backend = make_backend(
        BackendConfig(kind="transformers", model=str(tiny_text_llm), max_new_tokens=6, batch_size=2),
        images=False,
        key="instructions.rewrite.backend",
    )
    backend.setup()
    img = np.zeros((8, 8, 3), np.uint8)
    reqs = [
        ChatRequest(["Rewrite: Colorize {image}."], system="One per line."),
        ChatRequest(["Image-1: ", img, "describe"]),
        ChatRequest(["Rewrite: Edit {image}."]),
        ChatRequest(["Rewrite: Paint {image}."]),
    ]
    res = backend.chat(reqs)
    assert [r.ok for r in res] == [True, False, True, True] and res[1].error == "images_for_text_model"
    assert [r.text for r in backend.chat(reqs)] == [r.text for r in res]  # greedy: deterministic


def test_backend_errors_name_the_recipe_key(tmp_path, tiny_text_llm, monkeypatch):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "not_a_model_anyone_knows"}))
    b = make_backend(
        BackendConfig(kind="transformers", model=str(odd)), images=False, key="instructions.rewrite.backend"
    )
    with pytest.raises(ValueError, match=r"instructions\.rewrite\.backend\.modality"):
        b.setup()
    # a stage that sends images cannot run on a text LLM
    b = make_backend(
        BackendConfig(kind="transformers", model=str(tiny_text_llm)), images=True, key="instructions.captioner.backend"
    )
    with pytest.raises(ValueError, match=r"instructions\.captioner\.backend\.model=.*text-only"):
        b.setup()
    # GPU discipline: asking for CUDA in a worker Ray gave no GPU is refused before anything loads
    import datagen.devices

    monkeypatch.setattr(datagen.devices, "_ASSIGNED", [])
    b = make_backend(BackendConfig(kind="transformers", model=str(tiny_text_llm), device="cuda"), images=False)
    with pytest.raises(RuntimeError, match="num_gpus"):
        b.setup()


@pytest.mark.parametrize(
    "cfg, kind",
    [
        ({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}, "text"),
        ({"model_type": "llama"}, "text"),
        ({"model_type": "gemma3_text"}, "text"),
        (
            {"model_type": "internvl", "vision_config": {"hidden_size": 32}, "text_config": {"model_type": "qwen2"}},
            "image_text",
        ),
        (
            {
                "model_type": "internvl_chat",
                "vision_config": {},
                "llm_config": {},
                "auto_map": {"AutoModel": "m.InternVLChatModel"},
            },
            "image_text",
        ),
        ({"model_type": "gemma3", "vision_config": {"model_type": "siglip_vision_model"}}, "image_text"),
        ({"model_type": "qwen2_5_vl"}, "image_text"),
        ({"model_type": "my_llm", "auto_map": {"AutoModelForCausalLM": "m.MyLLM"}}, "text"),
        ({"model_type": "not_a_model_anyone_knows"}, None),
    ],
)
def test_modality_from_config(cfg, kind):
    assert modality_from_config(cfg) == kind


def _mm(kwargs: dict) -> set[str]:
    return set(kwargs) & set(MULTIMODAL_ENGINE_KWARGS)


def test_vllm_engine_arguments_text_only_vs_image_text(tiny_internvl, tiny_text_llm):
    # the pure builder
    c = BackendConfig(kind="vllm", model="m", tensor_parallel_size=2, max_images=3)
    assert _mm(engine_kwargs(c, multimodal=False)) == set()
    assert engine_kwargs(c, multimodal=True)["limit_mm_per_prompt"] == {"image": 3}
    assert engine_kwargs(c, multimodal=False)["distributed_executor_backend"] == "mp"
    s = sampling_kwargs(c, ChatRequest(["x"], max_new_tokens=7, seed=2**40 + 5))
    assert s == {"max_tokens": 7, "temperature": 0.0, "seed": 5} and _mm(s) == set()

    # ace_full as written (kind: vllm): the rewriter sends no images, so its Qwen2.5-7B gets no multimodal
    # argument, without reading the checkpoint (no network, no vllm needed)
    ace = ace_full_instructions()
    rewriter = RewriteInstructions(ace.rewrite)
    assert isinstance(rewriter.backend, VLLMBackend)
    kw = rewriter.backend.engine_kwargs()
    assert _mm(kw) == set() and kw["model"] == "Qwen/Qwen2.5-7B-Instruct"

    # the captioner sends images: an image-text checkpoint gets the image limit, a text LLM is refused by key
    cap_cfg = ace.captioner.backend.model_copy(update={"model": str(tiny_internvl)})
    kw = VLLMBackend(cap_cfg, images=True, key="instructions.captioner.backend").engine_kwargs()
    assert kw["limit_mm_per_prompt"] == {"image": 4} and kw["tensor_parallel_size"] == 2
    text_cfg = ace.captioner.backend.model_copy(update={"model": str(tiny_text_llm)})
    with pytest.raises(ValueError, match=r"instructions\.captioner\.backend\.model=.*text-only"):
        VLLMBackend(text_cfg, images=True, key="instructions.captioner.backend").engine_kwargs()
    # a text LLM behind a stage that sends no images (a difference writer): nothing multimodal either
    assert _mm(VLLMBackend(text_cfg, images=False).engine_kwargs()) == set()
    # a stage that sends no images gets none, whatever the model
    assert (
        _mm(VLLMBackend(cap_cfg.model_copy(update={"modality": "image_text"}), images=False).engine_kwargs()) == set()
    )
