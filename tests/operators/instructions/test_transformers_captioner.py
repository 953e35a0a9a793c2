"""The transformers in-process backend on a tiny InternVL made here (real architecture, random weights): it loads
through AutoProcessor + AutoModelForImageTextToText like any checkpoint, answers every request of a mixed
batch, and the captioner stage keeps every sample, falling back (counted) when the answer is unusable.
vLLM is not installed here: its stage is left out with a plain reason."""

from datagen.batch import WorkBatch
from datagen.schema import Frame, Provenance, Sample, Turn
from operators.instructions.captioner import CaptionerInstructions
from operators.instructions.config import CaptionerConfig
from operators.instructions.stages import build_instruction_stages
from operators.instructions.templates import TemplateInstructions
from operators.models.backends.base import BackendConfig, ChatRequest, make_backend
from pipelines import build_recipe


def _batch(photo, n=3):
    batch = WorkBatch("img-00000", {}, seed=0, recipe="r")
    for i in range(n):
        turn = Turn("General Editing", "edit", [Frame(photo)], Frame(photo[:, ::-1].copy()), caption="an astronaut")
        batch.samples.append(Sample([turn], Provenance([f"file:///p{i}.png"], [f"id{i}"], "pairs", "1")))
    return batch


def test_tiny_internvl_answers_a_mixed_batch(tiny_internvl, photo):
    backend = make_backend(
        BackendConfig(kind="transformers", model=str(tiny_internvl), max_new_tokens=8, batch_size=4, image_max_side=64)
    )
    backend.setup()
    assert type(backend.model).__name__ == "InternVLForConditionalGeneration"
    reqs = [
        ChatRequest(["Image-1: ", photo, "\nImage-2: ", photo[::-1].copy(), "\nWrite the instruction."]),
        ChatRequest(["Image-1: ", photo, "\nDescribe."]),
        ChatRequest(["Rewrite this instruction: Colorize {image}."]),
    ]
    results = backend.chat(reqs)
    assert len(results) == 3 and all(r.ok and isinstance(r.text, str) for r in results)
    # greedy decoding is deterministic
    assert [r.text for r in backend.chat(reqs)] == [r.text for r in results]


def test_captioner_stage_falls_back_on_unusable_answers_and_keeps_every_sample(tiny_internvl, photo):
    cfg = CaptionerConfig(
        backend=BackendConfig(
            kind="transformers", model=str(tiny_internvl), max_new_tokens=6, batch_size=2, image_max_side=64
        )
    )
    batch = _batch(photo)
    TemplateInstructions()(batch)
    templates = [s.current.instruction for s in batch.samples]
    stage = CaptionerInstructions(cfg)
    assert stage.unavailable_reason() is None
    stage.setup()
    stage(batch)
    assert len(batch.samples) == 3
    skipped = batch.stats["captioner_instructions"].skipped
    n_fallback = sum(v for k, v in skipped.items() if k.startswith("fallback_template:"))
    methods = [s.current.instruction_method for s in batch.samples]
    assert methods.count("fallback_template") == n_fallback
    assert methods.count("captioner") + n_fallback == 3
    for s, t in zip(batch.samples, templates):
        if s.current.instruction_method == "fallback_template":
            # a random tiny model does not write `{image}`: its answer is refused and the template stays
            assert s.current.instruction == t
            assert s.turns[0].instruction_record.fallback.startswith("unusable:")
        assert s.indicator_problems() == []


def test_vllm_and_missing_models_are_left_out_plainly(caplog):
    recipe = build_recipe(
        {
            "instructions": {
                "methods": ["template", "captioner", "mllm_difference"],
                "captioner": {
                    "backend": {"kind": "vllm", "model": "OpenGVLab/InternVL2-26B", "tensor_parallel_size": 2}
                },
                "mllm_difference": {"backend": {"kind": "transformers", "model": ""}},
            }
        }
    )
    from datagen.probe import check_ops

    stages = build_instruction_stages(recipe)  # listed; asked on their workers whether they can run (datagen.probe)
    assert [s.name for s in stages] == ["template_instructions", "captioner_instructions", "difference_instructions"]
    why = check_ops(stages, 0.0, False)
    assert "vllm is not installed" in why["captioner_instructions"] and "no model set" in why["difference_instructions"]


def test_vllm_stage_declares_tensor_parallel_gpus():
    stage = CaptionerInstructions(
        CaptionerConfig(backend=BackendConfig(kind="vllm", model="m", tensor_parallel_size=4, actors=2))
    )
    r = stage.resources()
    assert r.num_gpus == 4 and r.concurrency == 2
    assert stage.stateful
