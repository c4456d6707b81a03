"""A node's ``retries:``: which failures get another attempt and how long to wait before it.

tenacity runs the loop. The wait doubles from ``backoff`` seconds per attempt, plus up to
``backoff`` of random jitter (so runs that failed together do not retry together), and is
capped at ``max_wait``; a failure that says when to come back (a model server's
``Retry-After``, carried as ``retry_after`` on the error) waits that long instead, capped
the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tenacity

from workbench.errors import ModelUnavailable, NodeError, WorkbenchError

__all__ = ["outcome_error", "retry_async", "retryable"]

T = TypeVar("T")


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed where this one failed."""
    if isinstance(exc, ModelUnavailable):  # an outage may pass; a missing model or key will not
        return bool(getattr(exc, "transient", False))
    if isinstance(exc, NodeError):  # a timeout, a model's unparsable answer, a failed sub-flow
        return True
    if isinstance(exc, WorkbenchError):  # a rail, a usage or trust problem: the same next time
        return False
    return isinstance(exc, Exception)  # a tool's own error (cancellation is no Exception)


def outcome_error(state: tenacity.RetryCallState) -> BaseException:
    """The error of the attempt that just failed (tenacity calls its hooks only after one)."""
    error = state.outcome.exception() if state.outcome is not None else None
    if error is None:
        raise RuntimeError("a retry hook ran without a failed attempt")
    return error


class _Wait(tenacity.wait.wait_base):
    """Exponential back-off with jitter, unless the failure says how long to wait."""

    def __init__(self, backoff: float, max_wait: float) -> None:
        self.max_wait = max_wait
        self.backoff = tenacity.wait_exponential(multiplier=backoff, max=max_wait) + tenacity.wait_random(
            0, backoff
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        after = getattr(outcome.exception(), "retry_after", None) if outcome is not None else None
        if isinstance(after, int | float) and not isinstance(after, bool):
            return min(max(float(after), 0.0), self.max_wait)
        return min(float(self.backoff(retry_state)), self.max_wait)


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    attempts: int,
    *,
    backoff: float,
    max_wait: float,
    on_retry: Callable[[BaseException, float], Any],
) -> T:
    """Await ``attempt()`` up to ``attempts`` times while it fails with a ``retryable`` error.

    ``on_retry(error, wait_seconds)`` is called before each wait; the last error is re-raised.
    """
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_Wait(backoff, max_wait),
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=lambda state: on_retry(
            outcome_error(state), state.next_action.sleep if state.next_action is not None else 0.0
        ),
        reraise=True,
    )
    return await retrying(attempt)
