"""Train the built-in tiny model (``model: default``) from scratch, on CPU, reproducibly.

    .venv/bin/python scripts/train_tiny_model.py --out /tmp/tiny_stage1 --no-doc            # stage 1
    .venv/bin/python scripts/train_tiny_model.py --resume /tmp/tiny_stage1 --steps 1000 --lr 1.5e-3  # stage 2
    .venv/bin/python scripts/train_tiny_model.py --eval-only    # re-evaluate the shipped model

The shipped model is stage 1 (2,000 steps from scratch) then stage 2 (1,000 more steps on
fresh examples): stage 1 alone had not yet learnt to copy tickers (docs/tiny_model.md).

Steps: (1) draw the synthetic corpus of the example flows (``workbench.models.corpus``),
(2) train a byte-level BPE tokenizer with chat special tokens, (3) train a small
Llama-architecture model with ``transformers.LlamaForCausalLM`` (a dev-only dependency: it
writes the exact Hugging Face format our runtime loads), loss on the assistant turn only,
(4) save config, weights (safetensors) and tokenizer files to ``workbench/models/tiny/``,
(5) greedy-decode held-out prompts and write the figures into ``docs/tiny_model.md``.
Everything is seeded; on the same torch build and thread count the result is the same.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.models.corpus import (  # noqa: E402
    ORDER_SCHEMA,
    Example,
    make_corpus,
    order_within_cash,
)

OUT_DIR = ROOT / "workbench" / "models" / "tiny"
DOC = ROOT / "docs" / "tiny_model.md"

BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS]

# One line, newlines only inside string literals: renders the same under plain jinja2 and
# under Hugging Face's environment (trim_blocks/lstrip_blocks), which treats literal
# newlines after block tags differently. With ``tools`` a system turn lists them compactly
# (``Tools: quote(ticker), buy(ticker, qty, price)``: the model's context is 512 tokens);
# an assistant turn's ``tool_calls`` are written as Hermes/Qwen-style blocks,
# ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``, one per call; a ``tool``
# message is a ``<|tool|>`` turn with the tool's answer.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}{{ '<|system|>\nTools:' }}{% for tool in tools %}"
    "{% set f = tool.function if tool.function is defined else tool %}"
    "{{ (' ' if loop.first else ', ') + f.name + '(' + (f.parameters.properties"
    " if f.parameters is defined and f.parameters.properties is defined else {}) | join(', ') + ')' }}"
    "{% endfor %}{{ '<|end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}"
    "{% set f = call.function if call.function is defined else call %}"
    "{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    '{{ \'<tool_call>\n{"name": "\' + f.name + \'", "arguments": \' }}'
    "{% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}"
    "{{ '}\n</tool_call>' }}{% endfor %}{% endif %}"
    "{{ '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

MODEL_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,  # grouped-query attention, as in the families we serve
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,  # SmolLM2-style; halves the embedding cost
}


def build_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE whose capital letters and digits stay single tokens.

    Why isolate them: the model copies tickers and prices from the news into the JSON,
    where the surrounding characters differ (`` ACME`` vs ``"ACME"``); with one token per
    letter/digit the copied pieces are the same tokens in both places.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[A-Z0-9]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def render_chat(messages: list[dict[str, Any]], add_generation_prompt: bool,
                tools: list[dict[str, Any]] | None = None) -> str:  # fmt: skip
    """The chat template rendered with plain jinja2 (what our runtime does too)."""
    import jinja2

    env = jinja2.Environment()
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=BOS, eos_token=EOS,
        tools=tools,
    )  # fmt: skip


def encode_example(tok: Tokenizer, ex: Example) -> tuple[list[int], list[int]]:
    """Token ids of the conversation, and labels that score only the assistant turns and their EOS.

    Rendered turn by turn: each piece starts right after a special token, so the pieces
    tokenize as the whole conversation does when the runtime renders it again.
    """
    messages, tools = ex.messages(), list(ex.tools) or None
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render_chat(messages[:i], True, tools)
        full = render_chat(messages[: i + 1], False, tools)
        context = tok.encode(prompt[len(done) :]).ids
        answer = tok.encode(full[len(prompt) : -1]).ids  # the answer and its EOS, not the newline after
        ids += context + answer
        labels += [-100] * len(context) + answer
        done = full[:-1]
    return ids, labels


def make_batch(tok: Tokenizer, exs: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch of examples with loss masks."""
    encoded = [encode_example(tok, ex) for ex in exs]
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(exs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(exs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(exs), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def save_tokenizer(tok: Tokenizer, out: Path, context: int) -> None:
    """tokenizer.json plus an HF-style tokenizer_config.json with the chat template."""
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "add_bos_token": False,  # the chat template writes the BOS itself
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": context,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def save(model: Any, tok: Tokenizer, out: Path, pad_id: int) -> None:
    """Config, weights (safetensors) and tokenizer files of ``model`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config.pad_token_id = pad_id
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tok, out, model.config.max_position_embeddings)
    model.train()


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train tokenizer and model, save them to ``args.out``; returns training figures."""
    from transformers import LlamaConfig, LlamaForCausalLM

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.time()
    if args.resume:
        # A second stage on the saved model and tokenizer, with fresh examples (another data seed).
        tok = Tokenizer.from_file(str(Path(args.resume) / "tokenizer.json"))
        model = LlamaForCausalLM.from_pretrained(args.resume, dtype=torch.float32)
        if args.context:  # RoPE has no learnt positions: a longer context needs only training on it
            model.config.max_position_embeddings = args.context
        data_seed = args.seed + 3 if args.data_seed is None else args.data_seed
    else:
        tok_texts = [render_chat(ex.messages(), False) for ex in make_corpus(20000, seed=args.seed + 1)]
        tok = build_tokenizer(tok_texts, args.vocab_size)
        specials = {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}
        ids = {key: tok.token_to_id(t) for key, t in specials.items()}
        config = LlamaConfig(vocab_size=tok.get_vocab_size(), attention_bias=False, mlp_bias=False,
                             hidden_act="silu", **ids, **MODEL_SHAPE)  # fmt: skip
        model = LlamaForCausalLM(config)
        data_seed = args.seed + 2 if args.data_seed is None else args.data_seed
    pad_id = tok.token_to_id(PAD)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {tok.get_vocab_size()}, params {n_params:,}", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    data = make_corpus(args.steps * args.batch_size, seed=data_seed)
    # Desk transcripts are ~5x longer than the other examples: a batch of their own, so the
    # short examples are not padded to their length (that padding cost ~10x per step).
    desk = make_corpus(args.steps * args.desk_batch, seed=data_seed + 100, triage_share=0.0, desk_share=1.0)
    model.train()
    losses: list[float] = []
    for step in range(args.steps):
        parts = [make_batch(tok, data[step * args.batch_size : (step + 1) * args.batch_size], pad_id)]
        if args.desk_batch:
            parts.append(make_batch(tok, desk[step * args.desk_batch : (step + 1) * args.desk_batch], pad_id))
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        # the mean over every scored token of both batches (the model shifts labels by one)
        counts = [int((part["labels"][:, 1:] != -100).sum()) for part in parts]
        loss = sum(model(**part).loss * n for part, n in zip(parts, counts)) / sum(counts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save(model, tok, Path(args.out) / f"step{step + 1}", pad_id)  # to stop early, if need be
        if step % 25 == 0 or step == args.steps - 1:
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(
                f"step {step:5d}  loss {recent:.4f}  lr {lr_at(step):.2e}  {time.time() - started:6.0f}s",
                flush=True,
            )

    save(model, tok, Path(args.out), pad_id)
    final = sum(losses[-100:]) / len(losses[-100:])
    return {
        "params": n_params,
        "vocab_size": tok.get_vocab_size(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "examples_seen": args.steps * (args.batch_size + args.desk_batch),
        "desk_batch": args.desk_batch,
        "lr": args.lr,
        "seed": args.seed,
        "data_seed": data_seed,
        "context": model.config.max_position_embeddings,
        "resumed_from": args.resume,
        "threads": torch.get_num_threads(),
        "train_seconds": round(time.time() - started, 1),
        "first_loss": round(sum(losses[:20]) / len(losses[:20]), 4),
        "final_loss": round(final, 4),
    }


def _schema_valid(value: Any) -> bool:
    """Check an answer against ORDER_SCHEMA by hand (no jsonschema dependency)."""
    if not isinstance(value, dict) or list(value) != list(ORDER_SCHEMA["properties"]):
        return False
    side, ticker, qty, price = value["side"], value["ticker"], value["qty"], value["price"]
    return (
        side in ("buy", "sell", "hold")
        and isinstance(ticker, str)
        and re.fullmatch(r"[A-Z]{1,5}", ticker) is not None
        and isinstance(qty, int)
        and not isinstance(qty, bool)
        and qty >= 0
        and isinstance(price, (int, float))
        and not isinstance(price, bool)
        and price > 0
    )


def _hf_greedy(path: Path, exs: list[Example]) -> list[str]:
    """Greedy answers from ``transformers`` (the reference implementation), batched."""
    return _hf_greedy_chats(path, [(ex.messages(False), None) for ex in exs], 48)


def _hf_greedy_chats(
    path: Path, chats: list[tuple[list[dict[str, Any]], Any]], max_new_tokens: int
) -> list[str]:
    """Greedy answers from ``transformers`` for (messages, tools) pairs, batched."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    out: list[str] = []
    for i in range(0, len(chats), 50):
        chunk = chats[i : i + 50]
        texts = [
            tok.apply_chat_template(m, tools=t, tokenize=False, add_generation_prompt=True) for m, t in chunk
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
        out += [tok.decode(row, skip_special_tokens=True) for row in gen[:, enc["input_ids"].shape[1] :]]
    return out


def evaluate_desk(path: Path, n: int, seed: int) -> dict[str, Any]:
    """Each assistant turn of ``n`` held-out desk transcripts, greedy after the reference turns
    before it (no constraint): calls well-formed and equal to the reference, the final answer."""
    from workbench.models.tool_calls import parse_tool_calls

    exs = make_corpus(n, seed=seed, triage_share=0.0, desk_share=1.0)
    turns = []
    for ex in exs:
        messages = ex.messages()
        turns += [(messages[:i], ex) for i, m in enumerate(messages) if m["role"] == "assistant"]
    answers = _hf_greedy_chats(path, [(m, list(ex.tools)) for m, ex in turns], 64)
    counts = dict.fromkeys(["quote", "quote_ok", "buy", "buy_ok", "buy_within", "final", "final_json",
                            "final_ok", "calls_parse"], 0)  # fmt: skip
    for (before, ex), text in zip(turns, answers, strict=True):
        reference = ex.messages()[len(before)]
        _, calls = parse_tool_calls(text)
        if reference.get("tool_calls"):
            want = reference["tool_calls"][0]["function"]
            kind = want["name"]
            counts[kind] += 1
            counts["calls_parse"] += len(calls) == 1
            if len(calls) == 1 and calls[0].name == kind:
                got = json.loads(calls[0].arguments)
                counts[f"{kind}_ok"] += got == json.loads(want["arguments"])
                if (
                    kind == "buy"
                    and isinstance(got.get("qty"), int)
                    and isinstance(got.get("price"), float | int)
                ):
                    counts["buy_within"] += got["qty"] * got["price"] <= ex.labels["cash"]
        else:
            counts["final"] += 1
            try:
                value = json.loads(text)
            except ValueError:
                continue
            counts["final_json"] += isinstance(value, dict) and list(value) == ["ticker", "qty", "note"]
            counts["final_ok"] += value == json.loads(reference["content"])
    calls = counts["quote"] + counts["buy"]
    return {
        "transcripts": n,
        "call turns parsed as one call": round(counts["calls_parse"] / calls, 3),
        "quote call equal to the reference": round(counts["quote_ok"] / counts["quote"], 3),
        "buy call equal to the reference": round(counts["buy_ok"] / max(1, counts["buy"]), 3),
        "buy call within cash": round(counts["buy_within"] / max(1, counts["buy"]), 3),
        "final answer a Result": round(counts["final_json"] / counts["final"], 3),
        "final answer equal to the reference": round(counts["final_ok"] / counts["final"], 3),
    }


def _runtime_greedy(path: Path, exs: list[Example]) -> list[str] | None:
    """Greedy answers from our own runtime, or None where it is not importable."""
    try:
        from workbench.models.base import GenerationRequest
        from workbench.models.local import LocalModel
    except ImportError:
        return None
    model = LocalModel.from_pretrained(path)
    requests = [GenerationRequest(messages=ex.messages(False), max_tokens=48) for ex in exs]
    return [g.text for g in model.generate_sync(requests)]


def evaluate(path: Path, n: int, seed: int, heldout_templates: bool) -> dict[str, Any]:
    """Greedy-decode ``n`` held-out trader prompts; the task's figures (shares of ``n``)."""
    exs = make_corpus(n, seed=seed, triage_share=0.0, heldout_templates=heldout_templates)
    started = time.time()
    answers = _hf_greedy(path, exs)
    seconds = time.time() - started
    keys = ["json", "schema", "side", "ticker", "price", "qty", "within_cash", "expected_within_cash"]
    counts = dict.fromkeys(keys, 0)
    for ex, text in zip(exs, answers):
        counts["expected_within_cash"] += order_within_cash(ex.labels, ex.labels["cash"])
        try:
            value = json.loads(text)
        except ValueError:
            continue
        counts["json"] += 1
        if not _schema_valid(value):
            continue
        counts["schema"] += 1
        counts["side"] += value["side"] == ex.labels["side"]
        counts["ticker"] += value["ticker"] == ex.labels["ticker"]
        counts["price"] += value["price"] == ex.labels["price"]
        counts["qty"] += value["qty"] == ex.labels["qty"]
        counts["within_cash"] += order_within_cash(value, ex.labels["cash"])
    figures: dict[str, Any] = {k: round(v / len(exs), 3) for k, v in counts.items()}
    ours = _runtime_greedy(path, exs)
    if ours is not None:
        figures["runtime_agrees"] = round(sum(a == b for a, b in zip(ours, answers)) / len(exs), 3)
    figures["n"] = len(exs)
    figures["seconds"] = round(seconds, 1)
    return figures


def evaluate_triage(path: Path, n: int, seed: int) -> dict[str, Any]:
    """Greedy-decode ``n`` held-out triage tickets; valid JSON, category and urgency accuracy."""
    exs = make_corpus(n, seed=seed, triage_share=1.0)
    counts = dict.fromkeys(["json", "category", "urgency"], 0)
    for ex, text in zip(exs, _hf_greedy(path, exs)):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        counts["json"] += isinstance(value, dict) and list(value) == ["category", "urgency"]
        if isinstance(value, dict):
            counts["category"] += value.get("category") == ex.labels["category"]
            counts["urgency"] += value.get("urgency") == ex.labels["urgency"]
    return {**{k: round(v / n, 3) for k, v in counts.items()}, "n": n}


def _table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("valid JSON", "json"),
        ("schema-valid Order", "schema"),
        ("side correct", "side"),
        ("ticker copied correctly", "ticker"),
        ("price copied correctly", "price"),
        ("qty equal to the sizing rule", "qty"),
        ("within cash (qty * price <= cash)", "within_cash"),
        ("within cash in the reference answers", "expected_within_cash"),
        ("our runtime's answer equals transformers'", "runtime_agrees"),
    ]
    names = list(results)
    lines = [
        "| metric | " + " | ".join(f"{k} (n={results[k]['n']})" for k in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, key in rows:
        cells = [f"{results[k][key]:.1%}" if key in results[k] else "n/a" for k in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc_figures(training: dict[str, Any] | None, results: dict[str, dict[str, Any]],
                      triage: dict[str, Any], desk: dict[str, Any]) -> None:  # fmt: skip
    """Replace the generated block of docs/tiny_model.md with the new figures."""
    block = ["<!-- figures:start (written by scripts/train_tiny_model.py) -->", ""]
    if training:
        block += ["Training run:", "", "```json", json.dumps(training, indent=2), "```", ""]
    size = sum(f.stat().st_size for f in OUT_DIR.iterdir() if f.is_file())
    block += [
        f"Size on disk of `workbench/models/tiny/`: {size / 1e6:.2f} MB.",
        "",
        "Held-out evaluation (greedy, `transformers` reference decoding):",
        "",
        _table(results),
        "",
        f"Triage task (n={triage['n']}): valid JSON {triage['json']:.1%}, category correct "
        f"{triage['category']:.1%}, urgency correct {triage['urgency']:.1%}.",
        "",
        f"Desk agent task (n={desk['transcripts']} transcripts, each turn greedy after the reference turns "
        "before it, no constraint):",
        "",
        "| metric | share |",
        "|---|---|",
        *(f"| {k} | {v:.1%} |" for k, v in desk.items() if k != "transcripts"),
        "",
        "<!-- figures:end -->",
    ]
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# The built-in tiny model\n\n<!-- figures:start -->\n<!-- figures:end -->\n"
    )
    new = re.sub(r"<!-- figures:start.*?<!-- figures:end -->", "\n".join(block), text, flags=re.S)
    DOC.write_text(new)


def main() -> None:
    """Command line: train (default) or re-evaluate, then update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT_DIR))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-n", type=int, default=300)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--resume", default=None, help="continue training the checkpoint in this folder")
    parser.add_argument(
        "--data-seed", type=int, default=None, help="corpus seed (default: seed+2, resumed seed+3)"
    )
    parser.add_argument(
        "--desk-batch", type=int, default=0, help="desk agent transcripts per step, beside the batch"
    )
    parser.add_argument("--save-every", type=int, default=0, help="also save a checkpoint every N steps")
    parser.add_argument("--context", type=int, default=None, help="with --resume: a new context length")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/tiny_model.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    training = None
    stats = Path(args.out) / "training.json"
    if not args.eval_only:
        training = train(args)
        previous = Path(args.resume or "/nonexistent") / "training.json"
        if previous.exists():  # keep the whole history: stage 1 from scratch, then each resume
            earlier = json.loads(previous.read_text())
            training = {"stages": [*earlier.get("stages", [earlier]), training]}
        stats.write_text(json.dumps(training, indent=2) + "\n")
        print(json.dumps(training, indent=2), flush=True)
    elif stats.exists():
        training = json.loads(stats.read_text())
    results = {
        "training phrasings": evaluate(Path(args.out), args.eval_n, seed=987654, heldout_templates=False),
        "unseen phrasings": evaluate(Path(args.out), args.eval_n // 2, seed=13579, heldout_templates=True),
    }
    triage = evaluate_triage(Path(args.out), args.eval_n // 3, seed=24680)
    desk = evaluate_desk(Path(args.out), args.eval_n // 5, seed=97531)
    print(json.dumps({**results, "triage": triage, "desk": desk}, indent=2), flush=True)
    if not args.no_doc and Path(args.out).resolve() == OUT_DIR.resolve():
        write_doc_figures(training, results, triage, desk)


if __name__ == "__main__":
    main()
