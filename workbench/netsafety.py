"""Rules shared by the processes that listen on a socket: the model server and the trace sink.

- ``refuse_open_bind``: binding an address other than loopback needs a secret (a key or
  token), else a ``UsageError`` (exit code 2) before anything listens.
- ``bearer_matches``: an ``Authorization: Bearer ...`` header checked in constant time.
- ``read_body``: a request body read up to a byte limit, whether or not the client declared
  its length (a chunked upload cannot get past the limit).

Bottom layer: it imports only ``workbench.errors``, so every layer that serves can use it.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from workbench.errors import UsageError

__all__ = ["bearer_matches", "is_loopback", "read_body", "refuse_open_bind"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1); False for anything else."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, "" (every interface): not provably this machine only
        return False


def refuse_open_bind(host: str, secret: str | None, *, service: str, remedy: str, exposure: str) -> None:
    """Raise ``UsageError`` if ``service`` would listen on a non-loopback ``host`` without ``secret``.

    ``remedy`` names the option that gives the secret; ``exposure`` says what a stranger
    could do (both end up in the one-paragraph message).
    """
    if secret or is_loopback(host):
        return
    raise UsageError(
        f"{service} binds {host}, which is not loopback: anyone who can reach this machine could "
        f"{exposure}. Give it {remedy}; every request must then send `Authorization: Bearer <key>`. "
        "Or bind 127.0.0.1 to keep it on this machine."
    )


def bearer_matches(authorization: str | None, secret: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <secret>`` (scheme in any case).

    The secret is compared with ``hmac.compare_digest``, so the time taken does not say how
    much of a guess was right.
    """
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), secret.encode())


async def read_body(request: Any, limit: int) -> bytes | None:
    """The body of a Starlette ``request``, or None once it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading anything; the
    bytes are also counted as they arrive, so a chunked body (no length) or a lying length
    stops at the limit too. Nothing past the limit is read.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
