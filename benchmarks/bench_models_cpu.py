"""Our local runtime against ``transformers`` ``generate`` on one tiny random-weight model (CPU, fp32).

    .venv/bin/python benchmarks/bench_models_cpu.py [--new-tokens 128] [--prompt-len 32] [--repeats 3]
        [--threads N] [--hidden 256 --layers 4 --vocab 4096] [--no-compile]

Builds a small Llama-style model with random weights (no downloads), saves it as a Hugging
Face checkpoint, loads it both ways, and times greedy generation of the same prompts (same
token ids, no EOS stop) at batch 1 and 8: our runtime as loaded by default (eager), our
runtime with ``compile=True`` (torch.compile of the decode step; opt-in on CPU, its one-time
compile is timed apart), and transformers. Prints tokens/s from wall time and from this
process's CPU time (steadier when other jobs share the cores), each variant's ratio to
transformers, and whether it produced transformers' tokens. Needs ``transformers``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from workbench.models.base import GenerationRequest
from workbench.models.engine import Engine, Job
from workbench.models.local import LocalModel


def build_checkpoint(directory: Path, hidden: int, layers: int, vocab: int) -> transformers.PreTrainedModel:
    """Save a random Llama-style model plus a small byte-level BPE tokenizer into ``directory``."""
    config = transformers.LlamaConfig(
        hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=max(1, hidden // 64), vocab_size=vocab, max_position_embeddings=512,
        bos_token_id=None, eos_token_id=None, pad_token_id=0, initializer_range=0.1,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    hf.eval().save_pretrained(directory)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"sample text number {i} with words and digits {i * 7919 % 1000}" for i in range(200)]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, initial_alphabet=alphabet))
    tok.save(str(directory / "tokenizer.json"))
    return hf


def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, cpu) seconds since ``start``."""
    now = clock()
    return now[0] - start[0], now[1] - start[1]


def time_ours(model: LocalModel, prompts: list[list[int]], new_tokens: int):
    """(wall, cpu) seconds and tokens of one greedy batch through the full engine loop."""
    jobs = [Job(request=GenerationRequest(prompt="", max_tokens=new_tokens), prompt_ids=p) for p in prompts]
    start = clock()
    results = model.engine.run(jobs)  # sampling, incremental detokenizing and stop checks included
    return since(start), [r.token_ids for r in results]


def time_hf(hf: transformers.PreTrainedModel, prompts: list[list[int]], new_tokens: int):
    """(wall, cpu) seconds and tokens of transformers' greedy generate (equal lengths: no padding)."""
    ids = torch.tensor(prompts)
    start = clock()
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)  # fmt: skip
    return since(start), out[:, ids.shape[1] :].tolist()


def main() -> None:
    """Run the comparison and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        hf = build_checkpoint(Path(tmp), args.hidden, args.layers, args.vocab)
        ours = LocalModel.from_pretrained(tmp, device="cpu")
    params = sum(p.numel() for p in hf.parameters())
    where = f"{torch.get_num_threads()} threads, {platform.machine()}"
    print(f"model: Llama-style, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
          f"{params / 1e6:.1f} M params, fp32, random weights")  # fmt: skip
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {where}")
    print(f"greedy, prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, median of {args.repeats}")
    print(
        "tok/s from wall time, and (in brackets) from this process's CPU time; ratio = variant / transformers"
    )
    compiled = None
    if not args.no_compile:
        compiled = LocalModel(ours.transformer, ours.tokenizer, name="compiled")
        compiled.engine = Engine(ours.transformer, ours.tokenizer, compile=True)
    gen = torch.Generator().manual_seed(1)
    for batch in args.batches:
        prompts = torch.randint(1, args.vocab, (batch, args.prompt_len), generator=gen).tolist()
        variants = {
            "ours (eager)": lambda p, n: time_ours(ours, p, n),
            "transformers": lambda p, n: time_hf(hf, p, n),
        }
        if compiled is not None:
            start = clock()
            time_ours(compiled, prompts, 8)  # compiles for this batch size
            print(
                f"batch {batch}: torch.compile of the decode step took {since(start)[0]:.0f} s (not counted)"
            )
            variants["ours (compiled)"] = lambda p, n: time_ours(compiled, p, n)
        for run in variants.values():
            run(prompts, 8)  # warm-up: allocations, first-call paths
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        tokens: dict[str, list[list[int]]] = {}
        for _ in range(args.repeats):
            for name, run in variants.items():
                t, tokens[name] = run(prompts, args.new_tokens)
                times[name].append(t)
        total = batch * args.new_tokens
        rate = {
            name: [total / statistics.median(t[i] for t in ts) for i in (0, 1)] for name, ts in times.items()
        }
        hf_w, hf_c = rate["transformers"]
        for name, (w, c) in rate.items():
            same = tokens[name] == tokens["transformers"]
            print(f"batch {batch:>2}  {name:<16} {w:>8.0f} ({c:>7.0f}) tok/s  "
                  f"{w / hf_w:>5.2f}x ({c / hf_c:.2f}x)  same tokens: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
