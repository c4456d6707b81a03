"""Helpers for tests of hostile input: special files, and a child process that cannot hurt.

A regression in a test of ``/dev/zero`` or of a FIFO would read forever or block forever,
so such tests run the code in a child Python with its address space capped
(``RLIMIT_AS``) and a wall-clock timeout: a regression fails the test, not the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD_MEMORY = 1 << 30  # bytes of address space; the loader needs a small part of it
# The child caps itself first thing (a preexec_fn could deadlock in a process with threads).
_CAP = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({CHILD_MEMORY}, {CHILD_MEMORY}))\n"
CLI = "import sys\nfrom workbench.cli import main\nsys.exit(main(sys.argv[1:]))\n"  # python -m workbench


def run_limited(code: str, *argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -c CODE ARGV...`` with this checkout first on the path, capped memory and a timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", _CAP + code, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


SPECIAL_KINDS = ("character device", "named pipe (FIFO)", "directory", "socket")


@contextmanager
def special_file(kind: str, tmp_path: Path) -> Iterator[Path]:
    """A path in ``tmp_path`` (or ``/dev/zero``) that is no regular file, of the given kind."""
    if kind == "character device":
        yield Path("/dev/zero")
    elif kind == "named pipe (FIFO)":
        path = tmp_path / "pipe.flow.yaml"
        os.mkfifo(path)
        yield path
    elif kind == "directory":
        path = tmp_path / "dir.flow.yaml"
        path.mkdir()
        yield path
    else:
        path = tmp_path / "sock.flow.yaml"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
            server.listen()
            yield path
