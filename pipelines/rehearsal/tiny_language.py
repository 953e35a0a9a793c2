"""Tiny models of the real architectures the instruction and judge stages load through the transformers backend: an
InternVL (vision-language: the instruction captioner, the MLLM difference step, the judge) and a Qwen2 text LLM (the
rewriter), with a byte-level BPE tokenizer trained here on our own prompts and templates, saved and loaded like any
checkpoint. Tests and `datagen rehearse` build them (where a recipe serves a model with vLLM, the rehearsal runs
the same stage through the transformers backend)."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<IMG_CONTEXT>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def _corpus() -> list[str]:
    from datagen import schema
    from operators.instructions.prompts import captioner_prompt, difference_prompt, image_header
    from operators.instructions.templates import fill_template
    from operators.scoring.judge_prompts import DATAGEN_PROMPTS

    lines = [captioner_prompt(1), captioner_prompt(2), difference_prompt(), image_header(3)]
    # the judge's questions and the shape of its answer, so that a taught judge's answer is a few tokens
    lines += [p.render("Make {image} gray.") for p in DATAGEN_PROMPTS.values()]
    lines += [f"following: {a}, preservation: {b}, quality: {c}" for a, b, c in ((7, 8, 6), (3, 9, 5), (10, 2, 4))]
    for t, spec in schema.TASKS.items():
        for k in range(12):
            lines.append(
                fill_template(
                    t, spec.direction, "a tabby cat on a red sofa", k, n_inputs=0 if spec.direction == "text" else 1
                ).text
            )
    return lines * 3


def _bpe(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return bpe


def build_tiny_qwen2_lm(out: Path, vocab_size: int = 600) -> Path:
    """A 2-layer Qwen2ForCausalLM (the architecture of ace_full's Qwen2.5 rewriter) with a chat template: a text
    LLM that loads through AutoTokenizer + AutoModelForCausalLM."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_internvl(out: Path, vocab_size: int = 600) -> Path:
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )
    from transformers.models.got_ocr2.image_processing_got_ocr2 import GotOcr2ImageProcessor

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
        chat_template=CHAT_TEMPLATE,
    )
    image_seq = 4  # (56 / 14)^2 patches, pixel-shuffled by 0.5
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size={"height": 56, "width": 56}, crop_to_patches=False),
        tokenizer=tok,
        video_processor=InternVLVideoProcessor(),
        image_seq_length=image_seq,
        chat_template=CHAT_TEMPLATE,
    )
    vision = InternVLVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=56, patch_size=14
    )
    text = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=1024,
        initializer_range=0.3,
    )  # larger than the default so a few LoRA steps can move the logits
    cfg = InternVLConfig(
        vision_config=vision, text_config=text, image_token_id=tok.context_image_token_id, image_seq_length=image_seq
    )
    import torch

    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


JUDGE_ANSWER = "following: 7, preservation: 8, quality: 6 (tiny judge)"


def judge_prompts() -> list[str]:
    """The judge's questions (datagen style) over a few instructions: what a taught tiny judge is asked."""
    from operators.scoring.judge_prompts import DATAGEN_PROMPTS

    said = ["Make {image} gray.", "Extract the edges of {image}.", "Fuse {image1} and {image2}.", "A red sofa."]
    return [p.render(s) for p in DATAGEN_PROMPTS.values() for s in said]


def build_tiny_judge(out: Path, steps: int = 150) -> Path:
    """A tiny InternVL taught to answer JUDGE_ANSWER to the judge's questions, in the judge's format: a judge whose
    answers parse (the scores mean nothing)."""
    return teach_answer(build_tiny_internvl(out), JUDGE_ANSWER, steps=steps, lr=5e-3, prompts=judge_prompts())


def teach_answer(
    folder: Path, answer: str, steps: int = 150, seed: int = 0, lr: float = 2e-3, prompts: list[str] | None = None
) -> Path:
    """Train a tiny InternVL saved in `folder` for a few steps to answer `answer` to any prompt with one or two
    images (`prompts`, default our own prompts and templates), and save it again: a rehearsal's judge then answers
    in the judge's format, so its parsing and its scores run end to end. The scores it gives mean nothing; the
    rehearsal says so."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoProcessor, InternVLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model = InternVLForConditionalGeneration.from_pretrained(folder)
    model.train()
    rng = np.random.default_rng(seed)
    lines = [line for line in (prompts or _corpus()) if line.strip()]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    torch.manual_seed(seed)
    for _ in range(steps):
        n = int(rng.integers(1, 3))
        text = lines[int(rng.integers(len(lines)))]
        msgs = [{"role": "user", "content": [*([{"type": "image"}] * n), {"type": "text", "text": text}]}]
        prompt = processor.apply_chat_template([msgs], add_generation_prompt=True, tokenize=False)[0]
        images = [Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)) for _ in range(n)]
        full = processor(text=[prompt + answer + "<|im_end|>"], images=images, return_tensors="pt")
        head = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1]
        labels = full["input_ids"].clone()
        labels[:, :head] = -100  # learn the answer, not the prompt
        loss = model(**full, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(folder)
    return folder
