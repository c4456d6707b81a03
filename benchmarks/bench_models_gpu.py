"""Decode tokens/s of a ~0.5 B Llama-family model on one NVIDIA GPU, beside achieved GB/s.

    python benchmarks/bench_models_gpu.py [--peak-bw 4.8e12] [--new-tokens 256] [--prompt-len 128]

Batch-1 decode is memory-bound: every token reads all weights plus the KV cache so far, so
``tokens/s <= peak HBM bandwidth / bytes read per token``. This script builds a random-weight
Qwen2.5-0.5B-shaped checkpoint in bf16 (no downloads: config.json, safetensors and a word-level
tokenizer.json written to a temp dir), loads it with ``LocalModel.from_pretrained`` and measures:

- ``engine``: end-to-end ``Engine.run`` of one greedy request (prefill excluded by subtracting
  a 1-token run), sampling, detokenizing and stop checks included;
- ``step``: the decode step alone (``decode_one_token`` in a loop, CUDA-synchronised),

each eager and with ``compile=True`` (torch.compile, CUDA graphs), printing tokens/s, achieved
GB/s = bytes per token x tokens/s, and the percentage of ``--peak-bw`` (H200: 4.8e12 B/s).
Finishes in a few minutes on an H200; exits with an error without CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers

from workbench.models.base import GenerationRequest
from workbench.models.config import load_config
from workbench.models.engine import Engine, Job
from workbench.models.llama import expected_weight_shapes, prefill
from workbench.models.local import LocalModel

QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "hidden_act": "silu",
}  # fmt: skip


def build_checkpoint(directory: Path, raw: dict, device: str) -> None:
    """Write config.json, random bf16 safetensors (std 0.02) and a word-level tokenizer."""
    (directory / "config.json").write_text(json.dumps(raw))
    config = load_config(directory)
    gen = torch.Generator(device=device).manual_seed(0)
    tensors = {}
    for name, shape in expected_weight_shapes(config).items():
        if name.endswith("norm.weight"):
            t = torch.ones(shape, device=device)
        else:
            t = torch.randn(shape, device=device, generator=gen) * 0.02
        tensors[name] = t.to(torch.bfloat16).cpu()
    save_file(tensors, str(directory / "model.safetensors"))
    vocab = {f"w{i}": i for i in range(config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(directory / "tokenizer.json"))


def bytes_per_token(model: LocalModel, context: float) -> float:
    """Weights (each tensor once; a tied head counted once) plus K and V of ``context`` slots."""
    seen, weights = set(), 0
    for p in model.transformer.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            weights += p.numel() * p.element_size()
    c = model.config
    kv = (
        2
        * c.num_layers
        * c.num_kv_heads
        * c.head_dim
        * context
        * model.transformer.embed_tokens.weight.element_size()
    )
    return weights + kv


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(model: LocalModel, engine: Engine, prompt: list[int], new_tokens: int) -> float:
    """Seconds of ``new_tokens - 1`` decode steps through the engine (a 1-token run subtracted)."""

    def run(n: int) -> float:
        job = Job(request=GenerationRequest(prompt="", max_tokens=n), prompt_ids=prompt)
        sync(engine.device)
        start = time.perf_counter()
        engine.run([job])
        sync(engine.device)
        return time.perf_counter() - start

    run(new_tokens)  # warm-up (and, compiled, the compile)
    return min(run(new_tokens) for _ in range(2)) - min(run(1) for _ in range(2))


def time_step(model: LocalModel, engine: Engine, prompt: list[int], new_tokens: int) -> float:
    """Seconds of ``new_tokens`` bare decode steps (no sampling), the model's own speed."""
    dev = engine.device
    tr = model.transformer
    # one engine run first: it sizes the KV cache as this engine wants it (and compiles)
    engine.run([Job(request=GenerationRequest(prompt="", max_tokens=new_tokens), prompt_ids=prompt)])
    tokens = torch.tensor([prompt], device=dev)
    length = torch.tensor([len(prompt)], device=dev)
    prefill(tr, tokens, length)
    token = torch.zeros(1, dtype=torch.long, device=dev)
    for i in range(3):  # warm-up
        engine._decode(tr, token, length + i, engine.compiled)
    sync(dev)
    start = time.perf_counter()
    for i in range(new_tokens):
        engine._decode(tr, token, length + i, engine.compiled)
    sync(dev)
    return time.perf_counter() - start


def main() -> int:
    """Build, load, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peak-bw", type=float, default=4.8e12, help="peak HBM bytes/s (H200: 4.8e12)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--layers", type=int, default=None, help="override the layer count (smoke tests)")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: smoke test of the script
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_models_gpu: CUDA is not available here; this benchmark needs an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2
    dev = torch.device(args.device)
    raw = dict(QWEN25_05B)
    if args.layers:
        raw["num_hidden_layers"] = args.layers
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; peak bandwidth {args.peak_bw / 1e12:.2f} TB/s")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_checkpoint(Path(tmp), raw, args.device)
        model = LocalModel.from_pretrained(tmp, dtype="bfloat16", device=dev, compile=False)
        print(f"built and loaded a random Qwen2.5-0.5B-shaped model in {time.perf_counter() - t0:.0f} s")
    params = sum(p.numel() for p in {p.data_ptr(): p for p in model.transformer.parameters()}.values())
    prompt = list(range(1, args.prompt_len + 1))
    context = args.prompt_len + args.new_tokens / 2  # mean KV length read per decode step
    per_token = bytes_per_token(model, context)
    shape = f"batch 1, prompt {args.prompt_len}, {args.new_tokens} new tokens"
    reads = f"{per_token / 1e9:.3f} GB read per token (weights + mean KV)"
    print(f"{params / 1e6:.0f} M params, bf16; {shape}; {reads}")
    print(f"{'variant':<32} {'tok/s':>8} {'GB/s':>8} {'% of peak':>10} {'bound tok/s':>12}")
    bound = args.peak_bw / per_token
    variants = [("eager", False)] + ([] if args.no_compile else [("compiled (CUDA graphs)", True)])
    for label, compiled in variants:
        engine = Engine(model.transformer, model.tokenizer, compile=compiled)
        t0 = time.perf_counter()
        for what, seconds, steps in (
            ("step", time_step(model, engine, prompt, args.new_tokens), args.new_tokens),
            ("engine", time_engine(model, engine, prompt, args.new_tokens), args.new_tokens - 1),
        ):
            tps = steps / seconds
            gbs = tps * per_token
            share = 100 * gbs / args.peak_bw
            print(f"{what + ', ' + label:<32} {tps:>8.1f} {gbs / 1e9:>8.1f} {share:>9.1f}% {bound:>12.0f}")
        print(f"  ({label}: {time.perf_counter() - t0:.0f} s including warm-up/compile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
