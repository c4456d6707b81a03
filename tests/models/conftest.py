"""Fixtures of the model tests: one tiny saved checkpoint per family (see model_checkpoints);
the built-in tiny model and an OpenAI-compatible server of it on loopback, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.server import running_server

from .model_checkpoints import FAMILIES, Checkpoint, make_checkpoint


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Checkpoint]:
    """One saved checkpoint per family, shared by the session."""
    root = tmp_path_factory.mktemp("ckpt")
    return {family: make_checkpoint(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def model() -> LocalModel:
    """The built-in tiny model (a module that needs another model defines its own ``model``)."""
    return LocalModel.from_pretrained(DEFAULT_MODEL_DIR, name="default")


@pytest.fixture(scope="module")
def base(model: LocalModel) -> Iterator[str]:
    """The base URL of ``workbench serve-model`` serving ``model`` on loopback."""
    with running_server(model, "default") as url:
        yield url
