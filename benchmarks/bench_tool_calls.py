"""Tool-call validity on the built-in tiny model (CPU): constrained vs unconstrained generation.

    .venv/bin/python benchmarks/bench_tool_calls.py [--cases 100] [--temperature 1.0] [--json report.json]
        [--model DIR]

Side by side in one run, on the same prompts and seeds: the desk agent's turns that must be a
tool call (the first turn, which quotes, and the turn after a good quote, which buys), from
transcripts the corpus generator draws with a seed no training run used. Each turn is
generated three ways:

- ``unconstrained``: the tools rendered by the chat template, no grammar (``tool_choice``
  ``none``), the text read with ``parse_tool_calls``, as a client would;
- ``auto``: the tools' grammar (text, or calls whose arguments fit each tool's schema);
- ``required``: the grammar with calls only.

A turn is a valid call when it holds at least one call, every call names an offered tool and
its arguments parse as JSON valid for that tool's parameters schema. Reported per mode: the
share of turns that wrote a call (``<tool_call>`` in the text; with ``auto`` the model may
answer in text instead), the share of valid calls, valid among the written ones (the
constrained modes must be 1.0), the share equal to the reference call (name and arguments),
and tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from workbench.models.base import GenerationRequest
from workbench.models.corpus import make_desk_example
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.tool_calls import parse_tool_calls
from workbench.types import Record

MODES = {"unconstrained": "none", "auto": "auto", "required": "required"}


def _turns(cases: int, seed: int) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]]:
    """(messages before the turn, tools, the reference call) for turns that are tool calls."""
    rng = random.Random(seed)
    out = []
    while len(out) < cases:
        example = make_desk_example(rng)
        messages = example.messages()
        for i, message in enumerate(messages):
            if message["role"] == "assistant" and message.get("tool_calls") and len(out) < cases:
                out.append((messages[:i], list(example.tools), message["tool_calls"][0]["function"]))
    return out


def _validators(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tool name, a checker of its arguments (the workbench type of its parameters schema)."""
    from workbench.decoding import type_of_schema

    return {t["function"]["name"]: type_of_schema(t["function"]["parameters"]) for t in tools}


def _valid(calls: list[Any], checkers: dict[str, Any]) -> bool:
    if not calls:
        return False
    for call in calls:
        checker = checkers.get(call.name)
        if checker is None:
            return False
        try:
            value = json.loads(call.arguments)
            assert isinstance(checker, Record)
            checker.validate(value, call.name)
        except Exception:  # not JSON, or not the tool's type
            return False
    return True


def run_mode(
    model: LocalModel, turns: list, mode: str, temperature: float, max_tokens: int
) -> dict[str, Any]:
    """Generate every turn in one mode; the validity and agreement figures."""
    valid = same = tokens = attempts = 0
    started = time.perf_counter()
    for i, (messages, tools, reference) in enumerate(turns):
        request = GenerationRequest(
            messages=messages,
            tools=tools,
            tool_choice=MODES[mode],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=i,
            parallel_tool_calls=False,
        )
        (generation,) = model.generate_sync([request])
        tokens += generation.output_tokens
        if mode == "unconstrained":
            calls = parse_tool_calls(generation.text)[1]
            attempts += "<tool_call>" in generation.text
        else:
            calls = generation.tool_calls
            attempts += bool(calls)
        ok = _valid(calls, _validators(tools))
        valid += ok
        if ok and calls[0].name == reference["name"]:
            same += json.loads(calls[0].arguments) == json.loads(reference["arguments"])
    seconds = time.perf_counter() - started
    n = len(turns)
    return {
        "wrote_a_call": round(attempts / n, 4),
        "valid": round(valid / n, 4),
        "valid_of_written": round(valid / attempts, 4) if attempts else None,
        "reference_call": round(same / n, 4),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every mode on the same turns; print (and optionally save) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="tool-call turns per mode (100)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0)")
    parser.add_argument("--max-tokens", type=int, default=160, help="token limit of each turn (160)")
    parser.add_argument("--seed", type=int, default=777, help="corpus seed of the transcripts (777)")
    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint (default: the tiny model)"
    )
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    model = LocalModel.from_pretrained(args.model, name="default", device="cpu")
    turns = _turns(args.cases, args.seed)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "model": Path(args.model).name,
        "cases": len(turns),
        "temperature": args.temperature,
        "modes": {mode: run_mode(model, turns, mode, args.temperature, args.max_tokens) for mode in MODES},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
