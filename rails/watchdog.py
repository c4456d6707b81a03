"""One background thread that interrupts Z3 contexts whose check overran its deadline.

Z3's own ``timeout`` is not always honoured (its string solver can build a witness for
minutes); ``Context.interrupt`` is. Arming costs a lock and a notify, not a thread
start per check.
"""

from __future__ import annotations

import itertools
import threading
import time

import z3

__all__ = ["arm", "disarm"]

_cv = threading.Condition()
_jobs: dict[int, tuple[float, z3.Context]] = {}
_ids = itertools.count()
_thread: threading.Thread | None = None


def _run() -> None:
    with _cv:
        while True:
            if not _jobs:
                _cv.wait()
                continue
            job, (deadline, ctx) = min(_jobs.items(), key=lambda item: item[1][0])
            now = time.monotonic()
            if deadline <= now:
                del _jobs[job]
                ctx.interrupt()
            else:
                _cv.wait(deadline - now)


def arm(seconds: float, ctx: z3.Context) -> int:
    """Interrupt ``ctx`` in ``seconds`` unless ``disarm`` comes first; returns a ticket."""
    global _thread
    with _cv:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="rails-z3-watchdog", daemon=True)
            _thread.start()
        job = next(_ids)
        _jobs[job] = (time.monotonic() + seconds, ctx)
        _cv.notify()
        return job


def disarm(job: int) -> None:
    """Cancel the interrupt armed with ticket ``job``."""
    with _cv:
        _jobs.pop(job, None)
