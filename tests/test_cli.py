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
