"""Rewrites, ACE's second method: N rewrites of each template instruction, each distinct from the template and
every earlier rewrite (text-embedding similarity), kept only if indicators and the task's meaning survive.
The rewriter is the classical rule-based paraphraser (embedded default) or an LLM through any chat backend."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from datagen.batch import SAMPLE_INSTRUCTION, SAMPLES, WorkBatch, derive_seed
from datagen.isolation import sample_uri
from datagen.operator import Operator, Resources, Role
from datagen.schema import (
    INDICATOR_RE,
    METHOD_FALLBACK_TEMPLATE,
    METHOD_LLM_REWRITE,
    METHOD_RULE_REWRITE,
    METHOD_TEMPLATE,
    Sample,
)
from operators.instructions.config import RewriteConfig
from operators.instructions.embedder import TextEmbedder
from operators.instructions.meaning import Selection, lexical_order, select_rewrites, word_distance
from operators.instructions.paraphrase import CAPTION_SLOT, RuleParaphraser
from operators.instructions.prompts import rewrite_prompt
from operators.instructions.records import count_fallback, turn_record, update_turn_record
from operators.instructions.text import clean_caption, normalize_answer
from operators.models.backends.base import ChatRequest, FailureBudget, answers, make_backend

log = logging.getLogger(__name__)


def skeleton(instruction: str, caption: str) -> tuple[str, str]:
    """(the instruction with its caption as CAPTION_SLOT, the caption) when the caption stands once inside it, else
    (the instruction, ""). The rule-based rewriter and the embedding checks work on the wording around the caption:
    the caption is the same in every rewrite, so it only made them look alike (and cost a third of the tokens)."""
    for words in (32, 64, 16):  # the template stage's max_caption_words (32 unless a recipe sets another)
        cap = clean_caption(caption, words)
        if cap and instruction.count(cap) == 1 and not instruction.startswith(cap) and CAPTION_SLOT not in instruction:
            return instruction.replace(cap, CAPTION_SLOT), cap
    return instruction, ""


def embedding_text(text: str) -> str:
    """What MiniLM sees of an instruction: indicators and the caption slot as plain words. Their braces are markup
    that every text of a comparison shares, and cost MiniLM's WordPiece three tokens each (a quarter of a short
    instruction's tokens, so a quarter of the embedding time)."""
    return INDICATOR_RE.sub(lambda m: "image" + m.group(1), text).replace(CAPTION_SLOT, "caption")


def parse_rewrites(answer: str) -> list[str]:
    """One rewrite per line of an LLM answer; list markers, quotes and prefixes removed, indicators untouched."""
    out = []
    for line in answer.splitlines():
        text = normalize_answer(line, n_inputs=0)
        if text and text not in out:
            out.append(text)
    return out


class RewriteInstructions(Operator):
    name = "rewrite_instructions"
    version = "1"
    role = Role.INSTRUCT
    reads = (
        SAMPLES,
        SAMPLE_INSTRUCTION,
    )
    writes = (SAMPLE_INSTRUCTION,)
    stateful = True  # holds the embedder (and the LLM for rewriter=llm); see __init__
    Config: ClassVar[type[RewriteConfig]] = RewriteConfig

    def __init__(self, config: RewriteConfig | None = None, **context):
        super().__init__(config, **context)
        c = self.config
        self.paraphraser = RuleParaphraser()
        # the rewriter sends text only: a text LLM, and no multimodal engine arguments
        self.backend = (
            make_backend(c.backend, images=False, key="instructions.rewrite.backend")
            if c.rewriter == "llm" and c.backend is not None
            else None
        )
        # one intra-op thread per CPU the worker is given: more only fight the other stages for the same cores
        self.embedder = TextEmbedder(
            c.embedder,
            backend=c.embedder_backend,
            quantize=c.embedder_quantize,
            threads=max(1, int(round(self.resources().num_cpus))),
        )
        # An LLM or torch's MiniLM wants an actor pool (loaded once per actor). The ONNX embedder loads in well under a
        # second and once per worker process (TextEmbedder keeps it per process), so the stage fuses into the
        # partition's task: on a small machine no CPU sits reserved for an actor that is idle between partitions.
        self.stateful = self.backend is not None or c.embedder_backend != "onnx"

    def unavailable_reason(self) -> str | None:
        if self.backend is not None:
            return self.backend.unavailable_reason()
        return None

    def resources(self) -> Resources:
        if self.backend is None:
            return Resources(num_cpus=1.0, batch_size=256)
        return self.backend.resources()

    def setup(self) -> None:
        self.embedder.setup()
        if self.backend is not None:
            self.backend.setup()

    def describe(self) -> str:
        c = self.config
        who = (
            f"LLM {self.backend.describe()}"
            if self.backend is not None
            else "classical rule-based paraphraser (verb/object grammar, request frames; no weights)"
        )
        return (
            f"rewrite_instructions: {c.n} rewrites per template by {who}; distinct below cosine {c.max_similarity}, "
            f"meaning kept above {c.min_similarity}, embeddings from {self.embedder.describe()}"
        )

    def _eligible(self, batch: WorkBatch) -> list[tuple[Sample, int]]:
        tasks = set(self.config.tasks)
        return [
            (s, i)
            for s in batch.samples
            for i, t in enumerate(s.turns)
            if t.instruction_method == METHOD_TEMPLATE and t.instruction and ("*" in tasks or t.task in tasks)
        ]

    def _llm_candidates(self, batch: WorkBatch, jobs: list[tuple[Sample, int]]) -> list[list[str] | str]:
        """Per job: candidate rewrites, or the reason the model gave none."""
        c = self.config
        reqs = [
            ChatRequest(
                [rewrite_prompt(s.turns[i].instruction, c.candidates, s.turns[i].task)],
                seed=derive_seed(batch.seed, s.key, i, self.name),
            )
            for s, i in jobs
        ]
        # a request the backend fails costs its template, counted; more failures than the recipe allows stop the job
        budget = FailureBudget(c.backend, len(jobs), self.name, f"partition {batch.partition}: ")
        out: list[list[str] | str] = []
        for (s, i), r in zip(jobs, answers(self.backend, reqs, budget, stage=self.name)):
            if not r.ok:
                log.debug("%s keeps its template (%s: %s)", sample_uri(s), r.error, r.detail or "no detail")
            out.append(parse_rewrites(r.text) if r.ok else r.error)
        return out

    def _select(
        self, jobs: list[tuple[Sample, int]], sources: list[str], cands: list[list[str] | str]
    ) -> list[Selection | None]:
        """Greedy selection per job. Embedding dominates the cost, so candidates are embedded in rounds over all jobs
        at once: the first n, then two more for the jobs still short of n, then the rest for those still short;
        greedy order makes this the same result as embedding everything (the embedder caches what it has seen)."""
        c = self.config
        out: list[Selection | None] = [None] * len(jobs)
        done = 0  # candidates per job embedded by the rounds so far
        for limit in (c.n, c.n + 2, None):
            todo = [
                k for k, cl in enumerate(cands) if isinstance(cl, list) and (out[k] is None or len(out[k].kept) < c.n)
            ]
            todo = [k for k in todo if out[k] is None or len(cands[k]) > done]
            done = limit if limit is not None else 10**9
            if not todo:
                continue
            texts: list[str] = []
            for k in todo:
                texts.append(sources[k])
                texts.extend(cands[k][:limit])
            vecs = self.embedder.encode([embedding_text(t) for t in texts])
            pos = 0
            for k in todo:
                s, i = jobs[k]
                cl = cands[k][:limit]
                keep = tuple(turn_record(s, i).slots.values())  # what a synthesized edit names
                out[k] = select_rewrites(
                    s.turns[i].task,
                    sources[k],
                    cl,
                    vecs[pos : pos + 1 + len(cl)],
                    c.n,
                    c.max_similarity,
                    c.min_similarity,
                    keep,
                )
                pos += 1 + len(cl)
        return out

    def process(self, batch: WorkBatch) -> WorkBatch:
        c = self.config
        stats = batch.stage(self.name)
        jobs = self._eligible(batch)
        if not jobs:
            return batch
        rngs = [np.random.default_rng(derive_seed(batch.seed, s.key, i, self.name)) for s, i in jobs]
        if self.backend is None:
            skel = [skeleton(s.turns[i].instruction, s.turns[i].caption) for s, i in jobs]
            sources = [t for t, _ in skel]
            cands: list[list[str] | str] = [
                self.paraphraser.candidates(src, rng, c.candidates) for src, rng in zip(sources, rngs)
            ]
        else:
            skel = [(s.turns[i].instruction, "") for s, i in jobs]
            sources = [t for t, _ in skel]
            cands = self._llm_candidates(batch, jobs)
        cands = [lexical_order(src, cl) if isinstance(cl, list) else cl for src, cl in zip(sources, cands)]
        if self.backend is None and c.min_change > 0:
            # measured on the demo's candidates: under 0.1 of their words changed, 88% are not distinct by MiniLM,
            # 0.1-0.2 two in three, over 0.6 none; skipping the closest saves their embedding and rarely a rewrite
            close = [[x for x in cl if word_distance(src, x) < c.min_change] for src, cl in zip(sources, cands)]
            cands = [[x for x in cl if x not in cl_close] for cl, cl_close in zip(cands, close)]
            n_close = sum(len(x) for x in close)
            if n_close:
                stats.skip("rejected_rewrite:too_close", n_close)
        selections = self._select(jobs, sources, cands)
        for sel, (_, cap) in zip(selections, skel):
            if sel is not None and cap:
                sel.kept = [k.replace(CAPTION_SLOT, cap) for k in sel.kept]
        method = METHOD_LLM_REWRITE if self.backend is not None else METHOD_RULE_REWRITE
        # wordings this partition already gives each task: the choice prefers a kept rewrite not among them
        used: dict[str, set[str]] = {}
        for s in batch.samples:
            for t in s.turns:
                if t.instruction:
                    used.setdefault(t.task, set()).add(t.instruction)
        for (s, i), cl, rng, sel in zip(jobs, cands, rngs, selections):
            turn = s.turns[i]
            source = turn.instruction
            if isinstance(cl, str):  # the model failed: keep the template, say so
                turn.instruction_method = METHOD_FALLBACK_TEMPLATE
                count_fallback(batch, self.name, cl)
                update_turn_record(s, i, method=METHOD_FALLBACK_TEMPLATE, fallback=cl)
                continue
            for why, k in sel.rejected.items():
                stats.skip(f"rejected_rewrite:{why}", k)
            if not sel.kept:
                if self.backend is not None:
                    turn.instruction_method = METHOD_FALLBACK_TEMPLATE
                    count_fallback(batch, self.name, "no_usable_rewrite")
                    update_turn_record(s, i, method=METHOD_FALLBACK_TEMPLATE, fallback="no_usable_rewrite")
                else:
                    stats.skip("kept_template:no_distinct_rewrite")
                continue
            if c.choose == "first":
                choice = sel.kept[0]
            else:
                fresh = [k for k in sel.kept if k not in used.get(turn.task, ())] or sel.kept
                choice = fresh[int(rng.integers(len(fresh)))]
            used.setdefault(turn.task, set()).add(choice)
            turn.instruction = choice
            turn.instruction_method = method
            update_turn_record(
                s,
                i,
                method=method,
                source=source,
                alternates=sel.kept,
                rewriter=c.rewriter,
                model=c.backend.model if self.backend is not None else None,
                checks={"max_similarity": c.max_similarity, "min_similarity": c.min_similarity},
            )
        return batch
