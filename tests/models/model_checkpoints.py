"""Tiny random-weight checkpoints of every supported family, built with ``transformers``.

Each checkpoint is a real Hugging Face directory (config.json, safetensors, tokenizer.json,
tokenizer_config.json with a chat template) written by ``save_pretrained``; the tokenizer is
a byte-level BPE trained here in a few milliseconds. ``transformers`` is a test-only
dependency: it is the reference our runtime must agree with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

VOCAB = 320
SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog 0123456789",
    "buy 10 shares of ACME at 12.5 dollars; sell 3 GLOBX at 7",
    '{"side": "buy", "ticker": "ACME", "qty": 10, "price": 12.5}',
    "hello world, hello model. numbers: 42 17 256 1024 3.14159",
] * 20

_SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256,
              bos_token_id=0, eos_token_id=1, initializer_range=0.2)  # fmt: skip

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32}  # fmt: skip
# family -> (transformers config class, extra kwargs); "smollm2" and "llama3" are llama variants
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", {}),
    "llama3": ("LlamaConfig", {"rope_scaling": LLAMA3_ROPE, "rope_theta": 500000.0}),
    "mistral": ("MistralConfig", {"sliding_window": None}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "smollm2": ("LlamaConfig", {"tie_word_embeddings": True}),
}  # fmt: skip


def build_tokenizer() -> Tokenizer:
    """A byte-level BPE with ChatML-style specials, trained on ``CORPUS``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 16, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return tok


def write_tokenizer(directory: Path) -> None:
    """tokenizer.json and tokenizer_config.json (with the chat template) into ``directory``."""
    build_tokenizer().save(str(directory / "tokenizer.json"))
    settings = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": CHAT_TEMPLATE}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))


@dataclass
class Checkpoint:
    family: str
    path: Path
    hf: torch.nn.Module  # the transformers model the files were saved from (fp32, eval)


def make_checkpoint(directory: Path, family: str, *, shard: bool = False, seed: int = 0) -> Checkpoint:
    """Save a tiny random ``family`` model (sharded into several files when ``shard``) with a tokenizer."""
    cls_name, extra = FAMILIES[family]
    config = getattr(transformers, cls_name)(**{**_SMALL, **extra})
    torch.manual_seed(seed)
    hf = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    directory.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(directory, max_shard_size="100KB" if shard else "1GB")
    write_tokenizer(directory)
    return Checkpoint(family, directory, hf)
