"""Whether a process that left a mark in a file (a trace run, a thread claim) may still run."""

from __future__ import annotations

import os
import socket

__all__ = ["pid_alive"]


def pid_alive(pid: int | None, host: str | None) -> bool:
    """Whether ``pid`` on ``host`` may still run (unknown, or another machine, counts as alive)."""
    if pid is None or (host and host != socket.gethostname()):
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
