"""The trace write path needs no pandas: a traced tool-only run works where pandas cannot be
imported, and its spans are read back through Arrow.

Where pandas is installed it still ends up in ``sys.modules`` after such a run: pyarrow
(``pa.array`` asks its pandas shim whether a list is array-like) and DuckDB (``register``)
import it on their own. So the test blocks the import instead of looking for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys

class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ImportError("pandas is blocked in this test")
        return None

sys.meta_path.insert(0, NoPandas())
import workbench
from workbench.traces import TraceStore

result = workbench.run("triage", {"ticket": "I was charged twice", "tier": "pro"}, db=sys.argv[1])
with TraceStore(sys.argv[1]) as store:
    spans = store.arrow(
        "SELECT count(*) AS n FROM spans JOIN runs USING (trace_id) WHERE run_id = ?", [result.run_id]
    ).to_pylist()[0]["n"]
print(json.dumps({"status": result.status, "spans": spans}))
"""


def test_a_traced_run_writes_its_spans_without_pandas(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "t.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    # the flow span and one span per tool node (redact, classify, prioritise, summarise)
    assert got["status"] == "ok" and got["spans"] >= 5, (got, out.stderr)
