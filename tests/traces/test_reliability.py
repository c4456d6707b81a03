"""Crashes, full disks, locked and unwritable files, encryption: real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.traces import TraceLockedError, TraceStore, TraceStoreError, TraceWriter, tracer_for

from .helpers import record_run

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


LONG_RUN = """
    import sys
    from workbench.traces import TraceWriter
    w = TraceWriter(sys.argv[1], batch_size=500)
    root = w.start_span("run", attributes={"workbench.run.id": "crashy", "workbench.flow.name": "f"})
    committed = 0
    while True:  # a run that never ends: the parent kills us mid-write
        for _ in range(500):
            w.end_span(w.start_span("node", parent=root, attributes={"workbench.node.name": "n"}))
        w.flush()
        committed += 500
        print(committed, flush=True)
"""


def test_kill_9_mid_run_keeps_committed_batches_and_marks_the_run_incomplete(db: Path) -> None:
    child = _child(LONG_RUN, str(db))
    assert child.stdout is not None
    committed = 0
    for line in child.stdout:
        committed = int(line)
        if committed >= 5000:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with TraceStore(db) as store:  # the file opens; the WAL is replayed
        assert store.query("SELECT count(*) n FROM spans")["n"][0] >= committed
        runs = store.runs()
        assert runs["run_id"].tolist() == ["crashy"]
        assert runs["status"].tolist() == ["incomplete"]
    with TraceWriter(db) as w:  # the next owner records the verdict in the file itself
        assert w.store().query("SELECT status FROM runs")["status"].tolist() == ["incomplete"]


DISK_FULL = """
    import json, resource, signal, sys, os
    from workbench.traces import TraceWriter
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    w = TraceWriter(sys.argv[1], batch_size=2000, block_timeout=0.5)
    w.end_span(w.start_span("first"))
    w.flush()
    size = sum(os.path.getsize(p) for p in (sys.argv[1], sys.argv[1] + ".wal") if os.path.exists(p))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1_500_000, size + 1_500_000))
    root = w.start_span("run", attributes={"workbench.run.id": "full"})
    ran = 0
    for i in range(25):  # the run goes on whatever the disk does
        for _ in range(2000):
            w.end_span(w.start_span("node", parent=root, attributes={"workbench.node.name": "n" * 50}))
        w.flush()
        ran += 1
    w.end_span(root)
    w.close()
    print(json.dumps({"ran": ran, **w.stats.as_dict()}))
"""


def test_a_full_disk_is_reported_and_the_run_goes_on(db: Path) -> None:
    child = _child(DISK_FULL, str(db))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["ran"] == 25
    assert stats["dropped"] > 0
    assert any("failed" in p for p in stats["problems"]), stats["problems"]
    print(stats["problems"][-1])
    assert "dropped spans" in err  # warned on stderr
    with TraceStore(db) as store:  # nothing committed is corrupted
        stored = store.query("SELECT count(*) n FROM spans")["n"][0]
        assert stored >= 1 and stored <= stats["written"]


HOLDER = """
    import sys, time
    from workbench.traces import TraceWriter
    w = TraceWriter(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
"""


def test_a_locked_file_names_its_holder(db: Path) -> None:
    child = _child(HOLDER, str(db))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(TraceLockedError) as info:
            tracer_for(db)
        assert info.value.pid == child.pid
        assert f"locked by process {child.pid}" in str(info.value)
        assert isinstance(info.value, WorkbenchError)
        with pytest.raises(TraceLockedError):
            TraceStore(db)
    finally:
        child.kill()
        child.wait()


def test_unwritable_and_missing_paths_give_clear_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TraceStoreError, match="cannot create the folder"):
        TraceWriter(blocker / "traces.duckdb")
    with pytest.raises(TraceStoreError, match="no trace database"):
        TraceStore(tmp_path / "nothing.duckdb")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TraceStoreError, match="cannot open trace database"):
        TraceWriter(garbage)


def test_a_read_only_open_while_this_process_writes_points_to_the_writer(db: Path) -> None:
    with TraceWriter(db) as w:
        with pytest.raises(TraceLockedError, match=r"writer.store\(\)"):
            TraceStore(db)
        assert w.store().runs().empty


def test_encryption_at_rest(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("correct horse battery staple\n")
    monkeypatch.setenv("WORKBENCH_TRACES_KEY_FILE", str(key_file))
    with TraceWriter(db) as w:
        record_run(w, "secret-run", nodes=2)
        w.end_span(w.start_span("plain", attributes={"marker": "ZEBRA-OKAPI-VISIBLE"}))
    raw = db.read_bytes() + (
        db.with_name(db.name + ".wal").read_bytes() if db.with_name(db.name + ".wal").exists() else b""
    )
    assert b"ZEBRA-OKAPI" not in raw and b"secret-run" not in raw
    with TraceStore(db) as store:
        assert store.runs()["run_id"].tolist() == ["secret-run"]
    monkeypatch.delenv("WORKBENCH_TRACES_KEY_FILE")
    with pytest.raises(TraceStoreError, match="is encrypted: set WORKBENCH_TRACES_KEY"):
        TraceStore(db)
    with pytest.raises(TraceStoreError, match="wrong encryption key"):
        TraceStore(db, key="not the key")
    monkeypatch.setenv("WORKBENCH_TRACES_KEY", "correct horse battery staple")
    with TraceStore(db) as store:
        assert len(store.spans("secret-run")) == 5


def test_a_wrong_key_on_a_new_path_leaves_no_plaintext_file(tmp_path: Path) -> None:
    target = tmp_path / "new.duckdb"
    with TraceWriter(target, key="k1") as w:
        w.end_span(w.start_span("x"))
    with pytest.raises(TraceStoreError):
        TraceWriter(target, key="k2")
    with TraceStore(target, key="k1") as store:
        assert store.query("SELECT count(*) n FROM spans")["n"][0] == 1
    assert os.path.exists(target)
