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

    lines = [captioner_prompt(1), captioner_prompt(2), difference_prompt(), image_header(3)]
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
