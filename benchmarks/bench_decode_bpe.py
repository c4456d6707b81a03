"""Decode masks on BPE vocabularies (CPU): the schema part against XGrammar and outlines-core,
the rails part's extra cost, and applying a mask to the logits.

    .venv/bin/python benchmarks/bench_decode_bpe.py [--vocab 32000 128000] [--docs 40]
        [--cache DIR] [--json report.json]

The vocabularies are real byte-level BPE tokenizers trained here with ``tokenizers`` on a
generated corpus (syllable words, capitalised words, numbers and small JSON objects; a
Llama-3-style pre-tokenizer that splits digits into groups of up to three), cached under
``--cache``: about 2 s for 32k tokens and 15 s for 128k on first use.

Side by side in one run, per vocabulary, on the trader's ``Order`` answer and its budget rail
``order.qty * order.price <= cash``, replaying valid documents token by token (a fresh
matcher per document, as per request):

- the schema part, time per token to compute the next-token mask: llguidance through
  ``JsonSchemaConstraint`` (ours), XGrammar's ``GrammarMatcher.fill_next_token_bitmask`` and
  outlines-core's ``Guide.write_mask_into`` on the same JSON schema (outlines-core ignores
  the numeric bounds; its regex allows an optional blank where ours writes one);
- the rails part: ``RailsConstraint.allowed_tokens`` minus the schema mask it wraps, per
  token (mean, p99, max), with the solver answers cached on the plan across documents as in
  a flow run (each new cash value is a new state);
- applying a packed mask to ``[1, V]`` float32 logits on CPU with 1%, 50% and 99% of tokens
  allowed: the kernels' torch reference (what the CPU runtime calls) and XGrammar's CPU
  kernel for comparison.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from workbench.decoding import RailsConstraint
from workbench.kernels.bitmask import apply_token_bitmask_reference
from workbench.models.json_schema import JsonSchemaConstraint
from workbench.models.tokenizer import Tokenizer

EOS = "<|end|>"
# Llama 3's pre-tokenizer pattern: words with one leading non-letter, digits in groups of 3
SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
KEYS = ["side", "ticker", "qty", "price", "cash", "tag", "note", "f0", "f1", "f2", "count", "ok"]


def _sibling(name: str) -> ModuleType:
    """Another script of this folder, imported by path (the benchmarks are not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus(words: int, rng: random.Random) -> list[str]:
    """Lines of generated text: ``words`` distinct syllable words, plus JSON objects."""
    syllables = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + list("aeiou")
    vocab: set[str] = set()
    while len(vocab) < words:
        vocab.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 6))))
    ordered = sorted(vocab)
    lines = []
    for i in range(0, len(ordered), 12):
        chunk = ordered[i : i + 12]
        lines.append(" ".join(chunk))
        lines.append(" ".join(w.capitalize() for w in chunk[:6]))
        doc = {
            rng.choice(KEYS): chunk[0], "ticker": chunk[1].upper()[:5], "qty": rng.randint(0, 999),
            "price": round(rng.uniform(0, 500), rng.randint(0, 3)), "ok": rng.random() < 0.5,
            rng.choice(KEYS): rng.randint(-99, 99),
        }  # fmt: skip
        lines.append(json.dumps(doc))
    return lines


def train_bpe(vocab_size: int, directory: Path) -> Path:
    """A byte-level BPE ``tokenizer.json`` of ``vocab_size`` tokens in ``directory`` (reused if there)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as Backend

    path = Path(directory) / f"bpe-{vocab_size}" / "tokenizer.json"
    if path.exists() and path.with_name("tokenizer_config.json").exists():
        return path
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    # about 1.3 distinct words per token wanted: enough pairs left to merge up to the size
    backend.train_from_iterator(corpus(int(vocab_size * 1.3), random.Random(vocab_size)), trainer)
    if backend.get_vocab_size() < vocab_size:
        raise RuntimeError(f"the corpus gave only {backend.get_vocab_size()} tokens, not {vocab_size}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    backend.save(str(tmp))
    tmp.replace(path)  # whole or absent: parallel test sessions may train the same size
    path.with_name("tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    return path


def bpe_tokenizer(vocab_size: int, directory: Path) -> Tokenizer:
    """The runtime ``Tokenizer`` over a trained BPE vocabulary (EOS ``<|end|>``)."""
    return Tokenizer.from_directory(train_bpe(vocab_size, directory).parent)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "tokens": len(values), "mean_us": statistics.fmean(values), "p99_us": p99,
        "max_us": ordered[-1], "median_us": statistics.median(values),
    }  # fmt: skip


class _Times:
    """Per-token times, both wall clock and this thread's CPU time (on a machine shared with
    other jobs the wall clock also counts the time the scheduler gave to them)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start = (0, 0)

    def start(self) -> None:
        self._start = (time.perf_counter_ns(), time.thread_time_ns())

    def stop(self, minus: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
        wall = (time.perf_counter_ns() - self._start[0]) / 1e3 - minus[0]
        cpu = (time.thread_time_ns() - self._start[1]) / 1e3 - minus[1]
        self.wall.append(wall)
        self.cpu.append(cpu)
        return wall, cpu

    def summary(self) -> dict[str, dict[str, float]]:
        return {"cpu": _summary(self.cpu), "wall": _summary(self.wall)}


def _allowed(words: Any, t: int) -> bool:
    return bool((int(np.asarray(words).reshape(-1)[t // 32]) >> (t % 32)) & 1)


def _replay(docs: list[list[int]], start: Any, mask: Any, advance: Any, name: str) -> dict[str, Any]:
    """Per-token mask time over ``docs``: ``start()`` a matcher, ``mask(m)`` -> words, ``advance(m, t)``."""
    times = _Times()
    for ids in docs:
        m = start()
        for t in ids:
            times.start()
            words = mask(m)
            times.stop()
            if not _allowed(words, t):
                raise AssertionError(f"{name} refused token {t} of a valid document")
            advance(m, t)
    return times.summary()


def schema_times(tok: Tokenizer, schema: dict[str, Any], docs: list[list[int]]) -> dict[str, Any]:
    """Schema-only mask time per token: llguidance (ours), XGrammar, outlines-core."""
    import outlines_core
    import xgrammar
    from transformers import PreTrainedTokenizerFast

    vocab = tok.vocab_size
    eos = tok.eos_token_ids[0]
    out: dict[str, Any] = {}
    ours = JsonSchemaConstraint(schema, tok)
    out["llguidance (ours)"] = _replay(
        docs, lambda: ours.start(tok), lambda m: m.allowed_tokens(), lambda m, t: m.advance(t), "llguidance"
    )

    hf = PreTrainedTokenizerFast(tokenizer_object=tok.backend, eos_token=EOS)
    info = xgrammar.TokenizerInfo.from_huggingface(hf, vocab_size=vocab, stop_token_ids=[eos])
    compiled = xgrammar.GrammarCompiler(info, max_threads=1).compile_json_schema(
        json.dumps(schema), any_whitespace=False, separators=(", ", ": ")
    )
    xbuf = xgrammar.allocate_token_bitmask(1, vocab)

    def xmask(m: Any) -> Any:
        m.fill_next_token_bitmask(xbuf)
        return xbuf[0].numpy()

    out["xgrammar"] = _replay(
        docs, lambda: xgrammar.GrammarMatcher(compiled), xmask, lambda m, t: m.accept_token(t), "xgrammar"
    )

    from workbench.models.json_schema import _ll_tokenizer

    pieces = _ll_tokenizer(tok)
    table: dict[bytes, list[int]] = {}
    for i in range(vocab):
        if i != eos:
            table.setdefault(pieces.decode_bytes([i]), []).append(i)
    regex = outlines_core.json_schema.build_regex_from_schema(json.dumps(schema), whitespace_pattern=" ?")
    index = outlines_core.Index(regex, outlines_core.Vocabulary(eos, table))
    obuf = torch.zeros((vocab + 31) // 32, dtype=torch.int32)

    def omask(m: Any) -> Any:
        m.write_mask_into(obuf.data_ptr(), obuf.numel(), obuf.element_size())
        return obuf.numpy()

    def oadvance(m: Any, t: int) -> None:
        if t != eos:
            m.advance(t)

    out["outlines-core"] = _replay(docs, lambda: outlines_core.Guide(index), omask, oadvance, "outlines")
    return out


class _TimedInner:
    """The schema state inside ``RailsConstraint``, timing its mask so the rails part is the rest."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.last = inner, (0.0, 0.0)

    def allowed_tokens(self) -> Any:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        words = self.inner.allowed_tokens()
        self.last = ((time.perf_counter_ns() - wall) / 1e3, (time.thread_time_ns() - cpu) / 1e3)
        return words

    def advance(self, token_id: int) -> None:
        self.inner.advance(token_id)

    def is_finished(self) -> bool:
        return bool(self.inner.is_finished())


def rails_times(
    tok: Tokenizer, schema: dict[str, Any], plan: Any, docs: list[list[int]], cash: list[float]
) -> dict[str, Any]:
    """Per token: the whole rails-aware mask, and the rails part alone (the whole minus the schema)."""
    inner = JsonSchemaConstraint(schema, tok)
    whole, extra = _Times(), _Times()
    for ids, c in zip(docs, cash, strict=True):
        known, _ = plan.known({"cash": c})
        plan.conflict(known)  # as the runtime does before generation (not timed)
        state: Any = RailsConstraint(plan, known).constrain(inner).start(tok)
        state.inner = timed = _TimedInner(state.inner)
        for t in ids:
            whole.start()
            extra._start = whole._start
            words = state.allowed_tokens()
            whole.stop()
            extra.stop(timed.last)
            if not _allowed(words, t):
                raise AssertionError(f"the rails refused token {t} of a valid document")
            state.advance(t)
    return {"schema+rails": whole.summary(), "rails part": extra.summary()}


def apply_times(vocab: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median time to mask ``[1, vocab]`` float32 logits, per share of allowed tokens."""
    import xgrammar

    words = (vocab + 31) // 32
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for share in (0.01, 0.5, 0.99):
        flags = np.zeros(words * 32, dtype=bool)
        flags[:vocab] = rng.random(vocab) < share
        mask = torch.from_numpy(np.packbits(flags, bitorder="little").view(np.int32).copy()).view(1, words)
        logits = torch.randn(1, vocab)

        def ours(logits: torch.Tensor = logits, mask: torch.Tensor = mask) -> None:
            apply_token_bitmask_reference(logits, mask)

        def xgr(logits: torch.Tensor = logits, mask: torch.Tensor = mask) -> None:
            xgrammar.apply_token_bitmask_inplace(logits.clone(), mask)

        row = {}
        for name, fn in (("torch reference (ours)", ours), ("xgrammar (cpu)", xgr)):
            fn()
            samples = []
            for _ in range(repeats):
                begin = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - begin) * 1e6)
            row[name] = statistics.median(samples)
        out[f"{share:.0%}"] = row
    return out


def versions() -> dict[str, str]:
    """Versions of the engines compared."""
    names = ("llguidance", "xgrammar", "outlines_core", "tokenizers", "torch")
    return {n: importlib.metadata.version(n) for n in names}


def machine() -> str:
    """Where this ran, in a few words."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load {load:.1f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement for each vocabulary size, print tables and return the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128000], help="BPE sizes")
    parser.add_argument("--docs", type=int, default=40, help="valid documents replayed (40)")
    parser.add_argument("--repeats", type=int, default=200, help="repeats of each mask application (200)")
    parser.add_argument(
        "--cache", default=str(Path(tempfile.gettempdir()) / "workbench-bpe"), help="vocab cache"
    )
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    rails_bench = _sibling("bench_decode_rails")
    schema = rails_bench.ORDER.to_json_schema()
    pairs = rails_bench.valid_documents(args.docs, random.Random(0))
    torch.set_num_threads(1)
    report: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "rail": rails_bench.RAIL,
        "vocab": {},
    }
    print(f"# decode masks on BPE vocabularies: {report['machine']}")
    print("# " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    for size in args.vocab:
        tok = bpe_tokenizer(size, Path(args.cache))
        eos = tok.eos_token_ids[0]
        docs = [[*tok.encode(text, add_special_tokens=False), eos] for text, _ in pairs]
        entry = {
            "tokens": tok.vocab_size,
            "schema": schema_times(tok, schema, docs),
            "rails": rails_times(tok, schema, rails_bench.build_plan(), docs, [c for _, c in pairs]),
            "apply": apply_times(tok.vocab_size, args.repeats),
        }
        report["vocab"][str(size)] = entry
        print(f"\n## {tok.vocab_size} tokens, {args.docs} Orders replayed ({sum(map(len, docs))} tokens)")
        print("mask per token (us): CPU time of the thread (mean p99 max) | wall clock (mean p99)")
        for name, s in {**entry["schema"], **entry["rails"]}.items():
            c, w = s["cpu"], s["wall"]
            print(
                f"  {name:<20} {c['mean_us']:8.1f} {c['p99_us']:8.1f} {c['max_us']:8.1f} | "
                f"{w['mean_us']:8.1f} {w['p99_us']:8.1f}"
            )
        print("apply mask to [1, V] float32 logits, median us:")
        for share, row in entry["apply"].items():
            print(f"  {share:>4} allowed: " + "   ".join(f"{n} {v:8.1f}" for n, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
