"""The ``workbench`` command: exit codes, JSON shapes, help, errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import __version__
from workbench.cli import build_parser, main
from workbench.flow.io import MAX_FLOW_BYTES

from .hostile import CLI, run_limited, special_file

TRIAGE = ["triage", "-i", "ticket=The invoice is wrong, please refund ASAP", "-i", "tier=pro", "--no-trace"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_example_prints_json_shape(capsys):
    code, out, _ = run_cli(capsys, "run", *TRIAGE, "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"run_id", "status", "outputs", "rails"}
    assert data["status"] == "ok"
    assert data["outputs"]["reply"] == {
        "category": "billing",
        "priority": 1,
        "summary": "The invoice is wrong, please refund ASAP",
    }
    assert {r["name"] for r in data["rails"]} == {"no_email", "enterprise_first"}
    assert all(r["verdict"] == "pass" for r in data["rails"])


def test_run_human_output_and_inputs_file(capsys, tmp_path):
    inputs = tmp_path / "in.yaml"
    inputs.write_text("ticket: 'Crash on login!'\ntier: free\n")
    code, out, err = run_cli(capsys, "run", "triage", "--inputs", str(inputs), "--no-trace")
    assert code == 0
    assert json.loads(out)["reply"]["category"] == "bug"
    assert "rails: 2 passed, 0 failed" in err


def test_blocked_rail_exits_1_with_one_paragraph(capsys, tmp_path):
    flow = tmp_path / "strict.flow.yaml"
    text = (Path(__file__).parents[1] / "workbench/examples/flows/triage.flow.yaml").read_text()
    flow.write_text(text.replace("priority >= 2", "priority >= 3"))
    code, out, err = run_cli(
        capsys, "run", str(flow), "-i", "ticket=hello", "-i", "tier=enterprise", "--no-trace", "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "failed"
    assert data["error"].startswith("rail 'enterprise_first' blocked prioritise.priority")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-flow"], "no flow file 'no-such-flow'"),
        (["run", "triage", "-i", "tier=gold", "-i", "ticket=x", "--no-trace"], "tier: 'gold' is not one of"),
        (["run", "triage", "-i", "oops", "--no-trace"], "-i expects name=value"),
        (["run", "triage", "--inputs", "/nonexistent.yaml", "--no-trace"], "cannot read a mapping"),
        (["run", "missing/file.flow.yaml"], "missing/file.flow.yaml: no such file"),
    ],
)
def test_usage_and_input_errors_exit_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_untrusted_tool_exits_2(capsys, tmp_path):
    flow = tmp_path / "t.flow.yaml"
    flow.write_text(
        "flow: t\ninputs: {x: str}\noutputs: {y: str}\nnodes:\n  n: {kind: tool, tool: 'os:getcwd', "
        "inputs: {x: str}, outputs: {y: str}}\nwires: [x -> n.x, n.y -> y]\n"
    )
    code, _, err = run_cli(capsys, "run", str(flow), "-i", "x=a", "--no-trace")
    assert code == 2 and "pass --trust" in err


def touch(path: str) -> dict:
    with open(path, "w", encoding="utf-8") as file:
        file.write("ran")
    return {}


def test_an_untrusted_flow_cannot_run_another_flow_trusted(capsys, tmp_path):
    """``workbench.api:run`` is ours, but runs a flow with the ``trust`` its inputs say: refused."""
    inner = tmp_path / "inner.flow.yaml"
    inner.write_text(
        f"flow: inner\ninputs: {{path: str}}\nnodes:\n  t: {{kind: tool, tool: '{__name__}:touch', "
        "inputs: {path: str}}\nwires: [path -> t.path]\n"
    )
    outer = tmp_path / "outer.flow.yaml"
    ports = "{flow: str, trust: bool, trace: bool, path: str}"
    outer.write_text(
        f"flow: outer\ninputs: {ports}\n"
        f"nodes:\n  run: {{kind: tool, tool: 'workbench.api:run', inputs: {ports}}}\n"
        "wires: [flow -> run.flow, trust -> run.trust, trace -> run.trace, path -> run.path]\n"
    )
    marker = tmp_path / "marker"
    argv = ["run", str(outer), "-i", f"flow={inner}", "-i", "trust=true", "-i", "trace=false"]
    code, _, err = run_cli(capsys, *argv, "-i", f"path={marker}", "--no-trace")
    assert code == 2 and not marker.exists()
    assert err.startswith(
        "error: flow 'outer', node 'run': tool 'workbench.api:run' is not in the registry of safe tools"
    )
    assert err.endswith(
        "pass --trust on the command line or trust=True in Python, which allows any importable tool\n"
    )
    run_cli(capsys, *argv, "-i", f"path={marker}", "--no-trace", "--trust")
    assert marker.read_text() == "ran"  # trusted, it runs (and fails after: run returns no dict)


def test_check_ok_and_json_shape(capsys):
    code, out, _ = run_cli(capsys, "check", "triage", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["errors"] == []
    assert {r["name"] for r in data["rails"]} == {"no_email", "enterprise_first"}
    for rail in data["rails"]:
        assert {"name", "port", "status", "counterexample", "conflict_with", "reason"} <= set(rail)


def test_check_invalid_flow_exits_1_and_unreadable_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.flow.yaml"
    bad.write_text("flow: bad\ninputs: {x: int}\noutputs: {y: str}\nwires: [x -> y]\n")
    code, out, _ = run_cli(capsys, "check", str(bad), "--json")
    assert code == 1
    assert "type mismatch: x is int but y is str" in json.loads(out)["errors"][0]
    broken = tmp_path / "broken.flow.yaml"
    broken.write_text("flow: [unclosed\n")
    code, _, err = run_cli(capsys, "check", str(broken))
    assert code == 2 and "broken.flow.yaml:2:1" in err


@pytest.mark.parametrize("kind", ["character device", "named pipe (FIFO)"])
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "{path}", "--no-trace"],
        ["check", "{path}"],
        ["run", "triage", "--inputs", "{path}", "--no-trace"],
    ],
)
def test_flow_and_inputs_files_that_are_no_regular_file_exit_2_at_once(tmp_path, kind, argv):
    """``/dev/zero`` was read until memory ran out, a FIFO blocked forever: a capped child process."""
    with special_file(kind, tmp_path) as path:
        child = run_limited(CLI, *(a.format(path=path) for a in argv), cwd=tmp_path)
    assert child.returncode == 2, child.stderr
    what = f"--inputs {path}: cannot read a mapping of inputs: " if "--inputs" in argv else f"{path}: "
    assert child.stderr == f"error: {what}it is a {kind}, not a regular file\n"


def test_inputs_file_over_the_limit_or_with_duplicate_keys_exits_2(capsys, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"ticket: x\ntier: pro\n" + b"#" * MAX_FLOW_BYTES)
    code, _, err = run_cli(capsys, "run", *TRIAGE[:1], "--inputs", str(big), "--no-trace")
    assert code == 2
    assert err == f"error: --inputs {big}: cannot read a mapping of inputs: the file is larger than 8 MiB\n"
    twice = tmp_path / "twice.yaml"
    twice.write_text("ticket: a\ntier: pro\nticket: b\n")
    code, _, err = run_cli(capsys, "run", *TRIAGE[:1], "--inputs", str(twice), "--no-trace")
    assert code == 2
    assert err == f"error: --inputs: cannot read a mapping of inputs: {twice}:3:1: duplicate key 'ticket'\n"


def test_unreadable_sub_flow_exits_2_naming_the_including_file(capsys, tmp_path):
    outer = tmp_path / "outer.flow.yaml"
    outer.write_text("flow: outer\nnodes:\n  sub: {kind: flow, flow: parts/none.flow.yaml}\n")
    for command in ("run", "check"):
        code, _, err = run_cli(capsys, command, str(outer), *(["--no-trace"] if command == "run" else []))
        assert code == 2
        assert err == (
            f"error: {outer}:3:21: node 'sub': the sub-flow 'parts/none.flow.yaml' "
            f"({tmp_path / 'parts' / 'none.flow.yaml'}) cannot be read: no such file\n"
        )


def test_version_and_help_for_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"workbench {__version__}"
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "check"} <= set(subcommands)
    for name in subcommands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert f"usage: workbench {name}" in capsys.readouterr().out


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "check", "triage"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "flow 'triage'" in proc.stdout


def test_serve_model_refuses_an_open_address_without_a_key():
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "serve-model", "default", "--address", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: serve-model binds 0.0.0.0, which is not loopback")
    assert "--api-key" in err and "WORKBENCH_API_KEY" in err and "127.0.0.1" in err
    assert "\n" not in err and "Traceback" not in err  # one paragraph, before any model loads


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--api-key", ""], "--api-key must be a non-empty key of printable ASCII without spaces"),
        (["--api-key", "two words"], "--api-key must be a non-empty key of printable ASCII without spaces"),
        (["--api-key", "clé"], "--api-key must be a non-empty key of printable ASCII without spaces"),
        (["--queue-size", "0"], "--queue-size must be a whole number of at least 1, got 0"),
        (["--max-tokens-limit", "-5"], "--max-tokens-limit must be a whole number of at least 1, got -5"),
    ],
)
def test_serve_model_refuses_unusable_options(capsys, argv, message):
    code, _, err = run_cli(capsys, "serve-model", "default", *argv)
    assert code == 2
    assert message in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback(capsys, tmp_path, where):
    def argv(*command: str) -> list[str]:
        return ["--debug", *command] if where == "before" else [*command, "--debug"]

    code, _, err = run_cli(capsys, *argv("run", "no-such-flow"))
    assert code == 2 and "Traceback (most recent call last)" in err and "no flow file" in err
    flow = tmp_path / "bad_json.flow.yaml"
    flow.write_text(
        "flow: t\ninputs: {s: str}\noutputs: {y: str}\nnodes:\n  n: {kind: tool, tool: 'json:loads', "
        "inputs: {s: str}, outputs: {y: str}}\nwires: [s -> n.s, n.y -> y]\n"
    )
    code, _, err = run_cli(capsys, *argv("run", str(flow), "-i", "s=not json", "--trust", "--no-trace"))
    assert code == 1 and "JSONDecodeError" in err and "Traceback (most recent call last)" in err
    (tmp_path / "a-file").write_text("")  # a file where the folder should be: the store cannot open
    code, _, err = run_cli(capsys, *argv("traces", "list", "--db", str(tmp_path / "a-file" / "x.duckdb")))
    assert code != 0 and "Traceback (most recent call last)" in err


def test_without_debug_there_is_no_traceback(capsys):
    code, _, err = run_cli(capsys, "run", "no-such-flow")
    assert code == 2 and "Traceback" not in err


# The process entry point with an atexit hook: it shows whether the interpreter's teardown ran.
ENTRY_WITH_TEARDOWN_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('teardown ran', file=sys.stderr))\n"
    "from workbench.cli import entry\n"
    "entry()\n"
)


def test_run_exits_without_teardown_after_flushing_output_and_trace(tmp_path):
    db = tmp_path / "traces.duckdb"
    news = "news=BOLT shares jump after a record quarter; the stock trades at 12.5"
    argv = ["run", "trader", "-i", news, "-i", "cash=1000", "--db", str(db)]
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY_WITH_TEARDOWN_PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # stdout is a pipe here, so block-buffered: all of it arrives only if the exit flushed it
    approved = {"side": "buy", "ticker": "BOLT", "qty": 10, "price": 12.5}
    assert json.loads(proc.stdout) == {"approved": approved}
    run_id = proc.stderr.split("run ", 1)[1].split(":", 1)[0]
    assert "teardown ran" not in proc.stderr  # os._exit: no interpreter teardown
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        (status,) = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        names = {n.split()[0] for (n,) in con.execute("SELECT name FROM spans").fetchall()}
    assert status == "OK"
    assert {"invoke_flow", "chat", "workbench.model.load"} <= names


def test_other_commands_and_main_as_a_function_exit_normally(capsys):
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY_WITH_TEARDOWN_PROBE, "check", "triage"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "flow 'triage'" in proc.stdout and "teardown ran" in proc.stderr
    # main() called as a function returns its code: the caller's process goes on
    news = "news=BOLT shares jump after a record quarter; the stock trades at 12.50"
    assert main(["run", "trader", "-i", news, "-i", "cash=1000", "--no-trace"]) == 0
    assert '"ticker": "BOLT"' in capsys.readouterr().out


def test_a_cpu_run_imports_neither_triton_nor_anything_it_does_not_need():
    code = (
        "import sys\n"
        "from workbench.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "unneeded = ('triton', 'workbench.traces.cli', 'workbench.models.server', 'starlette')\n"
        "print(sorted(m for m in unneeded if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    news = "news=BOLT shares jump after a record quarter; the stock trades at 12.50"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "trader", "-i", news, "-i", "cash=1000", "--no-trace", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("[]"), proc.stdout  # the model ran on the torch references


def test_json_output_survives_a_lone_surrogate(tmp_path):
    # A tool (or a Z3 string counterexample) may hand back a lone surrogate, which UTF-8 cannot
    # encode: the JSON output escapes it instead of dying with UnicodeEncodeError.
    (tmp_path / "surrogate_tool.py").write_text("def odd(x):\n    return {'y': x + '\\ud800'}\n")
    flow = tmp_path / "s.flow.yaml"
    flow.write_text(
        "flow: s\ninputs: {x: str}\noutputs: {y: str}\nnodes:\n  n: {kind: tool, tool: 'surrogate_tool:odd', "
        "inputs: {x: str}, outputs: {y: str}}\nwires: [x -> n.x, n.y -> y]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONIOENCODING": "utf-8"}
    argv = [sys.executable, "-m", "workbench", "run", str(flow), "-i", "x=é", "--trust", "--no-trace"]
    for extra in (["--json"], []):
        proc = subprocess.run(
            [*argv, *extra], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        outputs = data["outputs"] if extra else data
        assert outputs["y"] == "é\ud800"
