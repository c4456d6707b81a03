"""The ``workbench`` command (docs/architecture.md, "Command line").

    workbench run FLOW [-i k=v]... [--inputs FILE] [--model SPEC] [--db PATH] [--approve all|none] [--json]
                  [--thread ID] [--state PATH] [--replay RUN_ID [--replay-live]]
    workbench check FLOW [--json] [--explain RAIL]
    workbench serve [FLOW...] [--port] [--address] [--db]   (the app, from workbench.app)
    workbench traces list|show|query|export|serve ...       (from workbench.traces)
    workbench serve-model MODEL [--port] [--api-key]        (from workbench.models.server)

Exit codes: 0 ok; 1 the run failed (a rail blocked, a node failed) or the check found
errors; 2 a bad flow, bad input or bad usage. Errors print one paragraph, no traceback
unless ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from workbench import __version__
from workbench.errors import UsageError, WorkbenchError
from workbench.types import Str

__all__ = ["entry", "main"]

# Modules that add subcommands of their own through ``register(subparsers)``.
PLUGIN_COMMANDS = ("workbench.traces.cli", "workbench.models.server")
# The commands defined here: parsing one of them needs no plugin imported (the HTTP stacks).
OWN_COMMANDS = ("run", "check", "serve")


def _flow_path(text: str) -> Path:
    """A flow file path, or the name of a shipped example flow (``trader``)."""
    from workbench.examples import flow_path, list_flows

    path = Path(text)
    if path.exists() or "/" in text or text.endswith((".yaml", ".yml", ".json")):
        return path
    if text in list_flows():
        return flow_path(text)
    raise UsageError(
        f"no flow file '{text}' (and no example flow of that name; examples: {', '.join(list_flows())})"
    )


def _json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON text that any UTF-8 stream can print.

    Non-ASCII stays readable, except where a string holds a lone surrogate (Z3 may pick one for
    a string counterexample, and a tool may return one): UTF-8 cannot encode it, so the whole
    text falls back to ``\\uXXXX`` escapes, which JSON readers turn back into the same string.
    """
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, indent=indent, ensure_ascii=True, default=str)
    return text


def _load(text: str) -> Any:
    from workbench.flow import load

    return load(_flow_path(text))


def _parse_inputs(flow: Any, pairs: Sequence[str], inputs_file: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if inputs_file:
        from workbench.errors import FlowSyntaxError
        from workbench.flow.io import UnreadableFile, parse_yaml, read_limited

        # Read like a flow file: a regular file of at most 8 MiB, YAML without alias bombs.
        try:
            data = parse_yaml(read_limited(inputs_file), inputs_file)
        except UnreadableFile as exc:
            raise UsageError(f"--inputs {inputs_file}: cannot read a mapping of inputs: {exc}") from None
        except FlowSyntaxError as exc:
            raise UsageError(f"--inputs: cannot read a mapping of inputs: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--inputs {inputs_file}: expected a mapping of input name to value")
        values.update(data)
    for pair in pairs:
        name, eq, raw = pair.partition("=")
        if not eq or not name:
            raise UsageError(f"-i expects name=value, got {pair!r}")
        typ = flow.inputs.get(name)
        if isinstance(typ, Str):
            values[name] = raw  # strings are taken literally: -i ticker=123 is the text "123"
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def _model_spec(text: str | None) -> Any:
    if text is None:
        return None
    if text == "default":
        return "default"
    if Path(text).is_dir():
        return {"local": text}
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError:
        spec = None
    if isinstance(spec, dict):
        return spec
    raise UsageError(
        f"--model {text!r}: expected 'default', a checkpoint directory, or a mapping such as "
        "'{openai: {base_url: http://127.0.0.1:8000/v1, model: NAME}}'"
    )


def _open_tracer(args: argparse.Namespace) -> Any:
    if args.no_trace:
        return None
    try:
        from workbench.traces import tracer_for
    except ImportError:
        return None
    return tracer_for(args.db)


def cmd_run(args: argparse.Namespace) -> int:
    """``workbench run``: run a flow once and print its outputs."""
    from workbench.runtime import Executor
    from workbench.runtime.memory import ThreadWarning, default_state_path

    flow = _load(args.flow)
    inputs = _parse_inputs(flow, args.input, args.inputs)
    replay = None
    if args.replay is not None:  # read from the trace store before this run's writer opens it
        from workbench.api import replay_answers

        replay = replay_answers(flow, args.replay, db=args.db, live=args.replay_live)
        inputs = {**replay.inputs, **inputs}
    elif args.replay_live:
        raise UsageError("--replay-live goes with --replay RUN_ID")
    tracer = _open_tracer(args)
    try:
        executor = Executor(
            flow,
            tracer=tracer,
            trust=args.trust,
            model=_model_spec(args.model),
            profile_kernels=args.profile_kernels,
            approve=_approver(args.approve),
            thread=args.thread,
            state=args.state or default_state_path(args.db),
            replay=replay,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ThreadWarning)
            result = executor.run(inputs)
        for warning in caught:  # one line each, not the source line a warning points at
            if issubclass(warning.category, ThreadWarning):
                print(f"warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    finally:
        if tracer is not None:
            tracer.close()
    if args.json:
        print(_json_text(result.to_json(), indent=2))
    else:
        _print_run(result, args)
    if result.error is not None and args.debug and result.error.__cause__ is not None:
        traceback.print_exception(result.error.__cause__, file=sys.stderr)
    return 0 if result.status == "ok" else 1


def _approver(mode: str | None) -> Any:
    """The approver of agents' gated tool calls for ``--approve`` (None: ask at the terminal)."""
    from workbench.runtime.agent import Approve, Deny, Edit

    def decide(node: str, tool: str, call_id: str, arguments: dict[str, Any]) -> Any:
        call = f"{node}.{tool} {_json_text(arguments)}"
        if mode == "all":
            return Approve()
        if mode == "none":
            return Deny("denied by --approve none")
        if not sys.stdin.isatty():
            print(
                f"approval needed for {call}: denied (stdin is not a terminal; pass --approve all|none)",
                file=sys.stderr,
            )
            return Deny("nobody could be asked (stdin is not a terminal) and --approve was not given")
        print(f"approval needed: {call}", file=sys.stderr)
        while True:
            choice = input("approve (a), edit (e) or deny (d)? ").strip().lower()
            if choice in ("a", "approve"):
                return Approve()
            if choice in ("d", "deny"):
                return Deny(input("reason (optional): ").strip() or "denied at the terminal")
            if choice in ("e", "edit"):
                try:
                    edited = json.loads(input("arguments as a JSON object: "))
                except ValueError as exc:
                    print(f"not JSON: {exc}", file=sys.stderr)
                    continue
                if isinstance(edited, dict):
                    return Edit(edited)
                print("the arguments must be a JSON object", file=sys.stderr)

    return decide


def _print_run(result: Any, args: argparse.Namespace) -> None:
    if result.status == "ok":
        print(_json_text(result.outputs, indent=2))
    else:
        print(f"error: {result.error}", file=sys.stderr)
    failed = [r for r in result.rails if r.verdict == "fail"]
    if result.rails:
        print(
            f"rails: {len(result.rails) - len(failed)} passed, {len(failed)} failed"
            + "".join(f"\n  - {r.name} on {r.port} ({r.enforce})" for r in failed),
            file=sys.stderr,
        )
    if result.replay is not None:
        replayed = result.replay
        line = f"replay of run {replayed['of']}: {replayed['recorded']} model answers from its trace"
        if replayed["live"]:
            line += f", {len(replayed['live'])} from the model"
        if replayed["diverged"]:
            steps = ", ".join(f"{d['node']} step {d['step']}" for d in replayed["diverged"])
            line += f"; {len(replayed['diverged'])} to a request unlike the recorded one ({steps})"
        print(line, file=sys.stderr)
    if result.thread is not None:
        from workbench.runtime.memory import default_state_path

        kept = "kept" if result.status == "ok" else "left as it was"
        state = args.state or default_state_path(args.db)
        print(f"thread {result.thread}: conversation {kept} (state: {state})", file=sys.stderr)
    where = "" if args.no_trace else f" (traces: {args.db or '.workbench/traces.duckdb'})"
    print(f"run {result.run_id}: {result.status} in {result.seconds * 1000:.1f} ms{where}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """``workbench check``: validate a flow and verify its rails."""
    from workbench.errors import FlowSyntaxError
    from workbench.flow.verify import check_report

    try:
        flow = _load(args.flow)
    except FlowSyntaxError as exc:
        if args.json:
            print(json.dumps({"ok": False, "errors": [str(exc)], "rails": []}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.trust:  # start the flow's MCP servers to learn their tools' types
        from workbench.runtime.mcp import expand_mcp

        flow = expand_mcp(flow, trust=True)
    report = check_report(flow, explain=args.explain)
    errors, rails, notes = report["errors"], report["rails"], report["notes"]
    ok = not errors and not any(r["status"] == "conflict" for r in rails)
    if args.json:
        data = {"ok": ok, "errors": errors, "rails": rails, "notes": notes}
        if report.get("explain"):
            data["explain"] = report["explain"]
        print(_json_text(data, indent=2))
    else:
        _print_check(flow, errors, rails, report.get("explain"), notes)
    return 0 if ok else 1


def _print_check(
    flow: Any, errors: list[str], rails: list[dict[str, Any]], explain: str | None, notes: list[str]
) -> None:
    for error in errors:
        print(f"error: {error}")
    for rail in rails:
        line = f"{rail['status']:>11}  {rail['name']} on {rail['port']}"
        if rail.get("counterexample"):
            line += f"\n             counterexample: {_json_text(rail['counterexample'])}"
        if rail.get("conflict_with"):
            line += f"\n             conflicts with: {', '.join(rail['conflict_with'])}"
        if rail.get("reason"):
            line += f"\n             {rail['reason']}"
        print(line)
    for note in notes:
        print(f"note: {note}")
    if explain:
        print(explain)
    if not errors:
        print(
            f"flow '{flow.name}': {len(flow.nodes)} nodes, {len(flow.wires)} wires, "
            f"{len(rails)} rails checked"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    """``workbench serve``: the app, the trace sink and the REST API in one process."""
    try:
        from workbench.app.server import serve
    except ImportError as exc:
        raise UsageError(
            f"workbench serve needs the app extra: pip install 'agent-workbench[app]' ({exc})"
        ) from None
    return serve(args.flows, port=args.port, address=args.address, db=args.db, basic_auth=args.basic_auth)


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The argument parser of the ``workbench`` command (``plugins=False``: without the plugins' commands)."""
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Agent Workbench: typed agent flows, Z3-checked rails, local models, DuckDB traces.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a flow once and print its outputs",
        description="Run a flow once. Exit 0 ok, 1 run failed, 2 bad flow or usage.",
    )
    run.add_argument("flow", help="a *.flow.yaml file or the name of an example flow (trader, triage)")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input value (JSON, or plain text for str inputs); repeatable",
    )
    run.add_argument("--inputs", metavar="FILE", help="a JSON or YAML file mapping input names to values")
    run.add_argument(
        "--model",
        metavar="SPEC",
        help="override every llm node's model: default, a checkpoint "
        "directory, or a mapping like '{openai: {...}}'",
    )
    run.add_argument("--db", metavar="PATH", help="trace database (default .workbench/traces.duckdb)")
    run.add_argument("--no-trace", action="store_true", help="record no traces")
    run.add_argument(
        "--profile-kernels",
        action="store_true",
        help="record each model call's torch ops and kernels as child spans (slower)",
    )
    run.add_argument(
        "--trust",
        action="store_true",
        help="trust the flow: run any importable tool, not only the registered safe ones",
    )
    run.add_argument(
        "--approve",
        choices=("all", "none"),
        help="approve (all) or deny (none) every agent tool call marked approve: true; "
        "without it, ask at the terminal (deny when stdin is not a terminal)",
    )
    run.add_argument(
        "--thread",
        metavar="ID",
        help="continue each agent node's conversation of this thread (letters, digits, ._:@-), "
        "kept in the state file",
    )
    run.add_argument(
        "--state", metavar="PATH", help="thread state file (default state.duckdb beside the trace database)"
    )
    run.add_argument(
        "--replay",
        metavar="RUN_ID",
        help="take every model answer from this run's trace (an id, a unique prefix, or latest) instead "
        "of calling the model; inputs not given are that run's",
    )
    run.add_argument(
        "--replay-live",
        action="store_true",
        help="with --replay: ask the model where the trace has no answer, or one to a different request",
    )
    run.add_argument("--json", action="store_true", help='print {"run_id", "status", "outputs", "rails"}')
    run.set_defaults(handler=cmd_run)

    check = sub.add_parser(
        "check",
        help="validate a flow and verify its rails with Z3",
        description="Check types, wiring and rails. Exit 0 no errors, 1 errors or conflicts, 2 unreadable.",
    )
    check.add_argument("flow", help="a *.flow.yaml file or the name of an example flow")
    check.add_argument("--json", action="store_true", help='print {"ok", "errors", "rails"}')
    check.add_argument("--explain", metavar="RAIL", help="print a rail's SMT-LIB, hypotheses and verdict")
    check.add_argument(
        "--trust",
        action="store_true",
        help="trust the flow: start its agents' MCP servers to list their tools and check rails on them",
    )
    check.set_defaults(handler=cmd_check)

    serve = sub.add_parser(
        "serve",
        help="serve the workbench app, the trace sink and a REST API",
        description="Serve the app at /, the OTLP/HTTP trace sink at /v1/traces and /api/... "
        "(flows, check, runs). Binds 127.0.0.1; another address needs --basic-auth. Exit 2 on bad usage.",
    )
    serve.add_argument(
        "flows", nargs="*", metavar="FLOW", help="flow files (default: examples and ./*.flow.yaml)"
    )
    serve.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    serve.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--db", metavar="PATH", help="trace database (default .workbench/traces.duckdb)")
    serve.add_argument(
        "--basic-auth",
        metavar="PASSWORD",
        help="require this password (or a users JSON file); also WORKBENCH_BASIC_AUTH",
    )
    serve.set_defaults(handler=cmd_serve)

    for module in PLUGIN_COMMANDS if plugins else ():
        try:
            importlib.import_module(module).register(sub)
        except ImportError:
            continue  # an optional part that is not installed
    _add_debug(parser, default=False)
    return parser


def _add_debug(parser: argparse.ArgumentParser, default: Any) -> None:
    """The one ``--debug``, on the main parser and every subcommand's, so it counts before or
    after the command. Below the main parser it has no default: a subcommand's parser would
    otherwise overwrite ``workbench --debug run`` with its own False."""
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks of errors")
    for action in parser._actions:  # argparse lists a parser's subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                _add_debug(sub, argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``workbench`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser_for(sys.argv[1:] if argv is None else argv)
    return _dispatch(parser, parser.parse_args(argv))


def entry() -> NoReturn:
    """The process entry point (the ``workbench`` console script, ``python -m workbench``).

    After ``workbench run`` the process ends with ``os._exit`` once its output is flushed: the
    run has closed its trace writer, and the interpreter's teardown, which garbage-collects
    every object torch created, would only add ~0.4 s of CPU to the command.
    """
    parser = _parser_for(sys.argv[1:])
    args = parser.parse_args()
    code = _dispatch(parser, args)
    if args.command == "run":
        _exit_now(code)
    sys.exit(code)


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: the plugins' commands (and their imports) only where they may be meant."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return build_parser(plugins=command not in OWN_COMMANDS)


def _exit_now(code: int) -> NoReturn:
    """Flush what a normal exit would flush, then end the process without the teardown."""
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            code = code or 120  # what Python exits with when stdout cannot be flushed at exit
    os._exit(code)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except WorkbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workbench traces show | head`: the reader left, nothing is wrong
        sys.stdout = None  # no flush of the dead pipe at exit
        return 0
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc} (this is a bug; --debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    entry()
