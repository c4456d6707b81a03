"""The desk agent with its model pointed at a scripted OpenAI-compatible server (app tests).

The shipped ``desk`` example runs on the built-in tiny model, which cannot call tools;
these tests swap in the scripted server of ``tests.runtime.scripted_openai``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from workbench.examples import flow_path

from .conftest import Served, start_server, stop_server

NEWS = "BOLT shares jump after a record quarter"
FINAL = {"ticker": "BOLT", "qty": 8, "note": "bought 8 BOLT"}


def desk_text(base_url: str, name: str = "desk") -> str:
    """The desk flow's YAML, named ``name``, with the agent's model at ``base_url``."""
    text = flow_path("desk").read_text(encoding="utf-8")
    model = f"model: {{openai: {{base_url: '{base_url}', model: scripted, timeout: 10}}}}"
    assert text.count("model: default") == 1 and text.startswith("flow: desk\n")
    return text.replace("model: default", model).replace("flow: desk\n", f"flow: {name}\n", 1)


@contextlib.contextmanager
def desk_served(cwd: Path, model_url: str) -> Iterator[Served]:
    """``workbench serve`` in ``cwd`` offering the desk agent as ``deskbot``, its model at ``model_url``."""
    (cwd / "deskbot.flow.yaml").write_text(desk_text(model_url, "deskbot"), encoding="utf-8")
    server = start_server(cwd, cwd / "traces.duckdb")
    try:
        yield server
    finally:
        stop_server(server)
