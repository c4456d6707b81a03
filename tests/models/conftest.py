"""Fixtures of the model tests: one tiny saved checkpoint per family (see model_checkpoints)."""

from __future__ import annotations

import pytest

from .model_checkpoints import FAMILIES, Checkpoint, make_checkpoint


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Checkpoint]:
    """One saved checkpoint per family, shared by the session."""
    root = tmp_path_factory.mktemp("ckpt")
    return {family: make_checkpoint(root / family, family) for family in FAMILIES}
