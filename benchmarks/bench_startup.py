"""Start-up of ``workbench run trader ...`` as a user meets it: a fresh process, the tiny model, traces on.

    .venv/bin/python benchmarks/bench_startup.py                       # this tree alone
    git worktree add --detach /tmp/wb-base 05235c5                     # the code as it was
    .venv/bin/python benchmarks/bench_startup.py --peer /tmp/wb-base --repeat 9 --json out.json
    .venv/bin/python benchmarks/bench_startup.py --what-if     # what the costs outside the models are

What runs: the ``make run`` example, ``python -m workbench run trader -i "news=BOLT shares jump
after a record quarter; the stock trades at 12.5" -i cash=1000``, in a subprocess with
``PYTHONPATH`` set to the tree under test (the same interpreter and packages for every tree)
and a scratch working directory per tree, so each tree's runs land in its own
``.workbench/traces.duckdb``. The trees take turns sample by sample (peer, ours, peer, ours...)
so load on a shared machine hits them alike, after one untimed warm-up run each (it writes the
``.pyc`` files and creates the trace file, as the first ``make run`` would).

Per sample, ``wall`` is ``perf_counter`` around the whole subprocess (interpreter start to
exit) and ``cpu`` the subprocess's user + system CPU time (all its threads; on a loaded
machine it moves much less than wall); the rest is read back from the run's spans in the
trace file:

- ``run``: the run's root span (``invoke_flow trader``);
- ``load``: the ``workbench.model.load`` span (imports of the model runtime, reading the
  checkpoint); ``-`` for a tree without one, where loading happens inside the chat span;
- ``chat``: the llm node's span;
- ``1st token``: the run's start to the first ``workbench.decode.step`` event (loading and
  the first decode step, wherever the tree does its loading: comparable across trees);
- ``chat->1st``: the chat span's start to that first token.

The last column times ``python -c "import workbench.cli"`` (the floor of every command) the
same way. ``--what-if`` adds rows for this tree run through a launcher that takes one cost
away: pandas (which DuckDB imports when it binds a Python parameter and pyarrow on the trace
writer's first ``pa.array``, in its thread), Triton (which ``workbench.kernels`` imported
before it was made lazy), the interpreter's teardown (``os._exit`` once the CLI has flushed its
output; ``workbench run`` itself ends so since ``workbench.cli.entry``), the teardown's garbage
collections over torch's objects (``gc.freeze()`` before a normal exit), and the first three
together. The launcher calls ``workbench.cli.main``, which returns, so a row other than
``os._exit`` and ``all three`` includes the teardown that the plain ``ours`` row skips. A
module is taken away as if it were not installed (``sys.modules[name] = None``), which both
pyarrow and the kernels handle. Figures are the min and median over ``--repeat`` samples; the ratio is peer
median / ours median. Goal (issue "Sound verdicts and a sturdy runtime", item 11): ours at
most 2.5 s wall and a chat span of at most 300 ms (medians). The exit status is 0 whether or
not it holds; read the verdict. The machine and its load average are printed with the table:
on a shared machine the load moves every figure, the ratio much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

HERE = Path(__file__).resolve().parents[1]
NEWS = "BOLT shares jump after a record quarter; the stock trades at 12.5"
COMMAND = ["-m", "workbench", "run", "trader", "-i", f"news={NEWS}", "-i", "cash=1000"]
GOAL_WALL_S = 2.5
GOAL_CHAT_MS = 300.0
RUN_LINE = re.compile(r"^run ([0-9a-f]{32}): ok", re.M)  # what the CLI prints last, on stderr
COLUMNS = ("wall", "cpu", "run", "load", "chat", "1st token", "chat->1st")


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def check_tree(tree: Path, workdir: Path) -> None:
    """Make sure ``PYTHONPATH=tree`` imports that tree's ``workbench`` (not an installed one)."""
    code = "import workbench; print(workbench.__file__)"
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=workdir, env=_env(tree), capture_output=True, text=True, check=True)
    found = Path(out.stdout.strip()).resolve()
    if not found.is_relative_to(tree.resolve()):
        raise SystemExit(f"PYTHONPATH={tree} imports workbench from {found}, not from the tree")


def launcher(block: tuple[str, ...] = (), fast_exit: bool = False, freeze: bool = False) -> str:
    """``python -c`` code running the CLI as if ``block`` were not installed, or with a cheaper exit.

    ``fast_exit``: ``os._exit`` once the output is flushed (no teardown at all); ``freeze``:
    ``gc.freeze()`` before a normal exit, so the teardown's collections skip every live object.
    """
    lines = ["import gc, os, sys", *(f"sys.modules[{name!r}] = None" for name in block)]
    lines += ["from workbench.cli import main", "rc = main(sys.argv[1:])"]
    lines += ["gc.freeze()"] if freeze else []
    lines += ["sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)"] if fast_exit else ["sys.exit(rc)"]
    return "\n".join(lines)


# --what-if: the tree under test with a cost taken away, to size what is left outside the model code
WHAT_IF = {
    "ours, no pandas": launcher(("pandas",)),  # pyarrow imports it on the trace writer's first pa.array
    "ours, no triton": launcher(("triton",)),  # workbench.kernels imports it; CPU runs never launch it
    "ours, os._exit": launcher(fast_exit=True),  # no interpreter teardown
    "ours, gc.freeze": launcher(freeze=True),  # a teardown without collections over torch's objects
    "ours, all three": launcher(("pandas", "triton"), fast_exit=True),
}


def run_once(tree: Path, workdir: Path, code: str | None = None) -> dict[str, float | None]:
    """One CLI run of the example (through ``code`` when given): wall, CPU and its spans' figures in ms."""
    argv = ["-c", code, *COMMAND[2:]] if code else COMMAND
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], cwd=workdir, env=_env(tree), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"the example failed in {tree} (exit {done.returncode}):\n{done.stderr}")
    found = RUN_LINE.search(done.stderr)
    if found is None:
        raise SystemExit(f"no 'run ID: ok' line in the example's output:\n{done.stderr}")
    return {
        "wall": wall * 1000,
        "cpu": cpu * 1000,
        **read_spans(workdir / ".workbench" / "traces.duckdb", found.group(1)),
    }


def read_spans(db: Path, run_id: str) -> dict[str, float | None]:
    """The run's root, load and chat span durations and its first token's time, in ms."""
    with duckdb.connect(str(db), read_only=True) as con:
        (trace_id, run_start) = con.execute(
            "SELECT trace_id, start_ns FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        spans = con.execute(
            "SELECT name, span_id, start_ns, duration_ns FROM spans WHERE trace_id = ?", [trace_id]
        ).fetchall()
        by_name = {name.split()[0]: (span_id, start, dur) for name, span_id, start, dur in spans}
        chat_id, chat_start, chat_ns = by_name["chat"]
        (first,) = con.execute(
            "SELECT min(time_ns) FROM decode_steps WHERE trace_id = ? AND span_id = ?", [trace_id, chat_id]
        ).fetchone()
    load = by_name.get("workbench.model.load")
    return {
        "run": by_name["invoke_flow"][2] / 1e6,
        "load": load[2] / 1e6 if load else None,
        "chat": chat_ns / 1e6,
        "1st token": (first - run_start) / 1e6,
        "chat->1st": (first - chat_start) / 1e6,
    }


def import_once(tree: Path, workdir: Path) -> float:
    """Wall ms of ``python -c "import workbench.cli"``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import workbench.cli"], cwd=workdir, env=_env(tree), check=True)
    return (time.perf_counter() - start) * 1000


def summarize(values: list[float | None]) -> dict[str, float] | None:
    """Min and median of the samples (None when the tree has no such span)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"min": min(present), "median": statistics.median(present)}


def machine() -> str:
    """CPU, cores and Python, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def measure(cases: dict[str, tuple[Path, str | None]], repeat: int, warmup: int) -> dict[str, Any]:
    """Interleaved samples of every case (a tree, and the launcher code of a what-if or None)."""
    samples: dict[str, list[dict[str, float | None]]] = {name: [] for name in cases}
    imports: dict[str, list[float]] = {name: [] for name, (_, code) in cases.items() if code is None}
    with tempfile.TemporaryDirectory(prefix="wb-startup-") as scratch:
        workdirs = {name: Path(scratch) / str(i) for i, name in enumerate(cases)}
        for name, (tree, code) in cases.items():
            workdirs[name].mkdir()  # also the working directory: a tree there would shadow PYTHONPATH
            check_tree(tree, workdirs[name])
            for _ in range(warmup):
                run_once(tree, workdirs[name], code)
        for _ in range(repeat):
            for name, (tree, code) in cases.items():
                samples[name].append(run_once(tree, workdirs[name], code))
                if name in imports:
                    imports[name].append(import_once(tree, workdirs[name]))
    return {
        name: {
            "tree": str(tree),
            "launcher": code,
            "samples": samples[name],
            "summary": {col: summarize([s[col] for s in samples[name]]) for col in COLUMNS},
            "import_cli_ms": summarize(imports[name]) if name in imports else None,
        }
        for name, (tree, code) in cases.items()
    }


def _cell(stat: dict[str, float] | None) -> str:
    if stat is None:
        return "-"
    return f"{stat['min']:.0f} / {stat['median']:.0f}"


def report(results: dict[str, Any], load_before: float, load_after: float, repeat: int) -> list[str]:
    """The table (min / median ms per column) and the verdict lines."""
    lines = [
        f"# startup of the trader example: {repeat} samples per row, min / median in ms",
        f"# {machine()}; load average {load_before:.2f} before, {load_after:.2f} after",
        "| tree | " + " | ".join(COLUMNS) + " | import workbench.cli |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for name, res in results.items():
        cells = [_cell(res["summary"][col]) for col in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_cell(res['import_cli_ms'])} |")
    ours = results["ours"]["summary"]
    if "peer" in results:
        peer = results["peer"]["summary"]
        for col in ("wall", "cpu", "chat", "1st token"):
            lines.append(f"ratio peer/ours, median {col}: {peer[col]['median'] / ours[col]['median']:.2f}x")
    wall_s, chat_ms = ours["wall"]["median"] / 1000, ours["chat"]["median"]
    met = wall_s <= GOAL_WALL_S and chat_ms <= GOAL_CHAT_MS
    lines.append(
        f"goal {'met' if met else 'missed'}: wall median {wall_s:.2f} s (goal <= {GOAL_WALL_S} s, "
        f"min {ours['wall']['min'] / 1000:.2f} s), chat median {chat_ms:.0f} ms "
        f"(goal <= {GOAL_CHAT_MS:.0f} ms)"
    )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, return the report (also written to ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peer", type=Path, help="another tree to compare with (e.g. a worktree of the base)"
    )
    parser.add_argument("--tree", type=Path, default=HERE, help="the tree under test (default: this one)")
    parser.add_argument("--repeat", type=int, default=7, help="timed samples per tree")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per tree first")
    parser.add_argument(
        "--what-if", action="store_true", help="also run ours without pandas, triton, teardown"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    cases: dict[str, tuple[Path, str | None]] = {"peer": (args.peer, None)} if args.peer else {}
    cases["ours"] = (args.tree, None)
    if args.what_if:
        cases |= {name: (args.tree, code) for name, code in WHAT_IF.items()}
    load_before = os.getloadavg()[0]
    results = measure(cases, args.repeat, args.warmup)
    load_after = os.getloadavg()[0]
    lines = report(results, load_before, load_after, args.repeat)
    print("\n".join(lines))
    out = {
        "machine": machine(),
        "load_average": [load_before, load_after],
        "trees": results,
        "verdict": lines,
    }
    out["goal_met"] = lines[-1].startswith("goal met")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
