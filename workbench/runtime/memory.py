"""Thread memory: each agent node's conversation, kept per thread in a local DuckDB file.

A run with a thread id (``workbench run --thread ID``, ``thread=`` in Python) claims the
thread in the state file (``.workbench/state.duckdb`` by default) before it starts, loads
the conversations stored for it, and hands them to its agent nodes (``THREAD_MEMORY``): an
agent continues its node's conversation, the flow's current system prompt first, then the
stored messages, then the new prompt. When the run succeeds, each agent's whole
conversation (without the system prompt) is written back; a failed or cancelled run leaves
the thread as it was. Either way the claim is released.

Two runs may not hold one thread at once: a claim held by a live process (this one
included) stops the second run with a ``ThreadError`` naming the holder; a claim left by a
process that died on this machine is taken over. The file itself is opened only for these
short transactions, so runs on other threads (other processes too) share it; a process that
finds it locked by another retries for a few seconds.

Conversations are keyed by the node's name (``outer/inner`` inside sub-flows). A thread
belongs to the flow (by name) that started it. Conversations stored for agent nodes the flow
no longer has (a renamed or removed node) stay in the file, unused, with a ``ThreadWarning``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import RunError, UsageError
from workbench.processes import pid_alive

if TYPE_CHECKING:
    import duckdb

    from workbench.flow.model import Flow

__all__ = [
    "THREAD_MEMORY",
    "ThreadError",
    "ThreadMemory",
    "ThreadStore",
    "ThreadWarning",
    "agent_keys",
    "check_thread_id",
    "default_state_path",
    "warn_unused",
]

_THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}")
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS threads (thread_id VARCHAR, flow_name VARCHAR, holder VARCHAR, "
    "holder_pid BIGINT, holder_host VARCHAR, runs BIGINT, created_ns BIGINT, updated_ns BIGINT)",
    "CREATE TABLE IF NOT EXISTS conversations (thread_id VARCHAR, node VARCHAR, messages JSON, "
    "run_id VARCHAR, updated_ns BIGINT)",
]
_PROCESS_LOCKS: dict[Path, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


class ThreadError(RunError):
    """A thread's state cannot be used now: another run holds the thread, or the file is unusable."""


class ThreadWarning(UserWarning):
    """A thread holds conversations the flow no longer uses (a renamed or removed agent node)."""


def check_thread_id(thread: Any) -> str:
    """``thread`` if it is a valid thread id (1 to 200 letters, digits and ``._:@-``), else ``UsageError``."""
    if not isinstance(thread, str) or not _THREAD_ID.fullmatch(thread):
        raise UsageError(
            f"thread id {thread!r} is not valid: use 1 to 200 letters, digits and . _ : @ -, "
            "starting with a letter or digit (e.g. --thread user-42)"
        )
    return thread


def default_state_path(db: str | Path | None = None) -> Path:
    """Where thread state lives: ``state.duckdb`` beside the trace file ``db`` (default ``.workbench/``)."""
    folder = Path(db).expanduser().parent if db is not None else Path.cwd() / ".workbench"
    return folder / "state.duckdb"


def agent_keys(flow: Flow, prefix: str = "") -> set[str]:
    """The keys of the flow's agent nodes, sub-flows' included (``outer/inner``)."""
    keys: set[str] = set()
    for name, node in flow.nodes.items():
        if node.kind == "agent":
            keys.add(prefix + name)
        elif node.kind == "flow":
            keys |= agent_keys(node.config["flow"], f"{prefix}{name}/")
    return keys


@dataclass
class ThreadMemory:
    """One run's view of a thread: the stored conversations and the ones this run updated."""

    thread: str
    run_id: str
    stored: dict[str, list[dict[str, Any]]]
    updated: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def history(self, key: str) -> list[dict[str, Any]]:
        """The conversation of node ``key`` so far (without its system prompt); ``[]`` for a new one."""
        return list(self.updated.get(key, self.stored.get(key, [])))

    def remember(self, key: str, messages: list[dict[str, Any]]) -> None:
        """Node ``key``'s whole conversation after this run (without its system prompt)."""
        self.updated[key] = list(messages)


# The thread memory of the run the current task belongs to (set by the executor).
THREAD_MEMORY: ContextVar[ThreadMemory | None] = ContextVar("workbench_thread_memory", default=None)


class ThreadStore:
    """The state file: threads, who holds each, and each agent node's conversation in it.

    ``wait``: seconds to keep trying while another process has the file open.
    """

    def __init__(self, path: str | Path | None = None, *, wait: float = 10.0) -> None:
        self.path = Path(path).expanduser().absolute() if path is not None else default_state_path()
        self.wait = wait
        with _PROCESS_LOCKS_GUARD:
            self._lock = _PROCESS_LOCKS.setdefault(self.path, threading.Lock())

    def __repr__(self) -> str:
        return f"ThreadStore({str(self.path)!r})"

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file open for one transaction: one at a time in this process, retried while another
        process has it."""
        import duckdb

        with self._lock:
            con = self._connect(duckdb)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            except duckdb.Error as exc:
                raise ThreadError(f"thread state file {self.path}: {str(exc).splitlines()[0]}") from None
            finally:
                con.close()

    def _connect(self, duckdb: Any) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait
        delay = 0.005
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ThreadError(f"cannot create the folder of thread state file {self.path}: {exc}") from None
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.Error as exc:
                text = str(exc)
                locked = "lock" in text.lower()
                if not locked or time.monotonic() >= deadline:
                    first = text.splitlines()[0] if text else type(exc).__name__
                    held = f" (another process held it over {self.wait:g} s)" if locked else ""
                    raise ThreadError(f"cannot open thread state file {self.path}{held}: {first}") from None
                time.sleep(delay)  # another process is in one of its short transactions
                delay = min(delay * 2, 0.1)
        for statement in _SCHEMA:
            con.execute(statement)
        return con

    def claim(self, thread: str, flow: str, run_id: str) -> ThreadMemory:
        """Hold ``thread`` for run ``run_id`` of flow ``flow`` and load its conversations.

        Raises ``ThreadError`` while a live process holds it, ``UsageError`` when it belongs
        to another flow.
        """
        check_thread_id(thread)
        now = time.time_ns()
        with self._transaction() as con:
            row = con.execute(
                "SELECT flow_name, holder, holder_pid, holder_host FROM threads WHERE thread_id = ?", [thread]
            ).fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO threads VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                    [thread, flow, run_id, os.getpid(), socket.gethostname(), now, now],
                )
                return ThreadMemory(thread, run_id, {})
            owner, holder, pid, host = row
            if owner != flow:
                raise UsageError(
                    f"thread '{thread}' holds the conversation of flow '{owner}', not '{flow}': use "
                    "another thread id for this flow"
                )
            if holder is not None and pid_alive(pid, host):
                where = f"process {pid}" + (f" on {host}" if host != socket.gethostname() else "")
                raise ThreadError(
                    f"thread '{thread}' is in use by run {holder} ({where}); two runs may not continue "
                    "one conversation at once. Wait for that run to end, or use another thread id"
                )
            con.execute(
                "UPDATE threads SET holder = ?, holder_pid = ?, holder_host = ? WHERE thread_id = ?",
                [run_id, os.getpid(), socket.gethostname(), thread],
            )
            rows = con.execute(
                "SELECT node, messages FROM conversations WHERE thread_id = ?", [thread]
            ).fetchall()
        return ThreadMemory(thread, run_id, {node: json.loads(messages) for node, messages in rows})

    def release(self, memory: ThreadMemory, *, save: bool) -> None:
        """Let go of the thread; with ``save``, store the conversations the run updated first."""
        now = time.time_ns()
        with self._transaction() as con:
            row = con.execute("SELECT holder FROM threads WHERE thread_id = ?", [memory.thread]).fetchone()
            if row is None or row[0] != memory.run_id:  # taken over: our claim was thought dead
                raise ThreadError(
                    f"thread '{memory.thread}' was taken over by run {row[0] if row else None} while run "
                    f"{memory.run_id} held it; this run's conversation was not saved"
                )
            if save:
                for node, messages in memory.updated.items():
                    con.execute(
                        "DELETE FROM conversations WHERE thread_id = ? AND node = ?", [memory.thread, node]
                    )
                    con.execute(
                        "INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                        [memory.thread, node, _json(messages), memory.run_id, now],
                    )
            con.execute(
                "UPDATE threads SET holder = NULL, holder_pid = NULL, holder_host = NULL, "
                "runs = runs + ?, updated_ns = ? WHERE thread_id = ?",
                [int(save), now, memory.thread],
            )

    def threads(self) -> list[dict[str, Any]]:
        """Every thread: id, flow, runs that saved to it, its holder (None when free)."""
        with self._transaction() as con:
            cursor = con.execute(
                "SELECT thread_id, flow_name, runs, holder, updated_ns FROM threads ORDER BY updated_ns DESC"
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def conversation(self, thread: str, node: str) -> list[dict[str, Any]]:
        """The stored conversation of agent node ``node`` in ``thread`` (``[]`` when there is none)."""
        with self._transaction() as con:
            row = con.execute(
                "SELECT messages FROM conversations WHERE thread_id = ? AND node = ?", [thread, node]
            ).fetchone()
        return json.loads(row[0]) if row else []


def warn_unused(memory: ThreadMemory, flow: Flow) -> list[str]:
    """Stored conversations of nodes the flow has no agent for; warns (``ThreadWarning``) when any."""
    unused = sorted(set(memory.stored) - agent_keys(flow))
    if unused:
        warnings.warn(
            ThreadWarning(
                f"thread '{memory.thread}' holds conversations of agent nodes that flow '{flow.name}' "
                f"does not have ({', '.join(unused)}): renamed or removed nodes start afresh, and the "
                "old conversations stay in the state file unused"
            ),
            stacklevel=2,
        )
    return unused

    return True


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
