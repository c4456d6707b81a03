"""Fixtures for the trace store tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A trace database path in a fresh folder (not created yet)."""
    return tmp_path / ".workbench" / "traces.duckdb"
