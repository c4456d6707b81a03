"""Opening the trace database: paths, the file lock, encryption at rest, clear errors.

Every connection is an in-memory DuckDB with the trace file ATTACHed as ``wb`` and made
the default (``USE wb``): the one way that works the same with and without a key.

Encryption: DuckDB writes securely encrypted files only with OpenSSL, which
comes in the httpfs extension. We load it from the ``duckdb-extension-httpfs`` wheel (or
DuckDB's own extension directory) and never fall back to the insecure built-in crypto:
without httpfs a keyed open is a clear ``EncryptionUnavailable`` error.

The key comes from ``key=``, ``key_file=``, or the environment: ``WORKBENCH_TRACES_KEY``
(the key itself) or ``WORKBENCH_TRACES_KEY_FILE`` (a file holding it).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import duckdb

from workbench.errors import WorkbenchError

__all__ = [
    "STORAGE_VERSION",
    "EncryptionUnavailable",
    "TraceLockedError",
    "TraceStoreError",
    "default_db_path",
    "open_database",
    "resolve_key",
]

KEY_ENV = "WORKBENCH_TRACES_KEY"
KEY_FILE_ENV = "WORKBENCH_TRACES_KEY_FILE"
STORAGE_VERSION = "v1.5.0"  # DuckDB storage format of new trace files (see open_database)


class TraceStoreError(WorkbenchError):
    """The trace database cannot be opened, read or written; the message says why."""


class TraceLockedError(TraceStoreError):
    """Another process holds the trace database; ``pid`` names it when DuckDB says."""

    def __init__(self, path: Path, pid: int | None, detail: str) -> None:
        self.path, self.pid = path, pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"trace database {path} is locked by {holder} and no workbench trace sink is running "
            f"for it. Stop that process, start `workbench traces serve` (the trace sink) to share "
            f"the file, or pass another --db. ({detail})"
        )


class EncryptionUnavailable(TraceStoreError):
    """A key was given but no secure encryption (OpenSSL via httpfs) can be loaded."""


def default_db_path(cwd: str | Path | None = None) -> Path:
    """``.workbench/traces.duckdb`` under ``cwd`` (the current directory by default)."""
    return Path(cwd or os.getcwd()) / ".workbench" / "traces.duckdb"


def resolve_key(key: str | None = None, key_file: str | Path | None = None) -> str | None:
    """The encryption key from the arguments, else the environment, else ``None``."""
    if key:
        return key
    key_file = key_file or os.environ.get(KEY_FILE_ENV)
    if key_file:
        try:
            text = Path(key_file).read_text().strip()
        except OSError as exc:
            raise TraceStoreError(f"cannot read trace key file {key_file}: {exc.strerror}") from None
        if not text:
            raise TraceStoreError(f"trace key file {key_file} is empty")
        return text
    return os.environ.get(KEY_ENV) or None


def _httpfs_candidates() -> list[str]:
    """Where a loadable httpfs extension may lie, the PyPI wheel first."""
    found: list[str] = []
    with contextlib.suppress(ImportError):
        import duckdb_extension_httpfs

        base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
        exact = base / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
        if exact.exists():
            found.append(str(exact))
    found.append("httpfs")  # DuckDB's own extension directory (installed earlier, or autoloaded)
    return found


def _load_secure_crypto(con: duckdb.DuckDBPyConnection) -> None:
    errors = []
    for candidate in _httpfs_candidates():
        try:
            con.execute(f"LOAD '{candidate}'" if "/" in candidate else f"LOAD {candidate}")
            return
        except duckdb.Error as exc:
            errors.append(f"{candidate}: {str(exc).splitlines()[0]}")
    raise EncryptionUnavailable(
        "encrypting the trace database needs DuckDB's httpfs extension (OpenSSL) and none could be "
        f"loaded offline for duckdb {duckdb.__version__}; install the matching wheel, e.g. "
        f"`pip install duckdb-extension-httpfs=={duckdb.__version__}`. Refusing DuckDB's insecure "
        f"built-in encryption. Tried: {'; '.join(errors)}"
    )


_PID = re.compile(r"\(PID (\d+)\)")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_database(
    path: str | Path, *, key: str | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed, unless ``read_only``) the trace file; ``wb`` is its catalog.

    Raises ``TraceLockedError`` when another process holds the file, ``TraceStoreError``
    for a path that cannot be opened or a wrong/missing key, ``EncryptionUnavailable``
    when a key is given but encryption cannot be done securely.
    """
    path = Path(path).expanduser().absolute()
    existed = path.exists() and path.stat().st_size > 0  # an empty file (a temp file) is new
    if read_only and not existed:
        raise TraceStoreError(f"no trace database at {path} (nothing has been recorded there yet)")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TraceStoreError(f"cannot create the folder for trace database {path}: {exc}") from None
    con = duckdb.connect(":memory:")
    options = []
    if key:
        _load_secure_crypto(con)
        options.append(f"ENCRYPTION_KEY {_sql_str(key)}")
    if read_only:
        options.append("READ_ONLY")
    elif not existed:
        # New files get the newer storage format: its string compression (DICT_FSST) made a
        # batch's commit ~0.4 us/span cheaper and the node-latency query ~25% faster than the
        # default (v0.10.2-compatible) format. Files need DuckDB >= 1.5 to read; existing
        # files are never upgraded behind their owner's back.
        options.append(f"STORAGE_VERSION {_sql_str(STORAGE_VERSION)}")
    clause = f" ({', '.join(options)})" if options else ""
    try:
        con.execute(f"ATTACH {_sql_str(str(path))} AS wb{clause}")
        con.execute("USE wb")
    except duckdb.Error as exc:
        con.close()
        # A failed keyed ATTACH of a new path can leave an unencrypted file behind.
        if key and not existed:
            for leftover in (path, path.with_name(path.name + ".wal")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        raise _translate(path, exc, key) from None
    return con


def _translate(path: Path, exc: duckdb.Error, key: str | None) -> TraceStoreError:
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if "Could not set lock" in text or "Conflicting lock" in text:
        match = _PID.search(text)
        return TraceLockedError(path, int(match.group(1)) if match else None, first)
    if "already attached" in text:
        return TraceLockedError(
            path,
            os.getpid(),
            "this process already has it open: read it through the open TraceWriter (writer.store())",
        )
    lowered = text.lower()
    if "encrypt" in lowered or ("key" in lowered and "without" in lowered):
        if key:
            return TraceStoreError(f"cannot open trace database {path}: wrong encryption key ({first})")
        return TraceStoreError(
            f"trace database {path} is encrypted: set {KEY_ENV} or {KEY_FILE_ENV} (or pass a key)"
        )
    return TraceStoreError(f"cannot open trace database {path}: {first}")
    return True
