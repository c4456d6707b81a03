"""Opening a flow by its path under the served directory, and nothing outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.app.document import flow_under
from workbench.app.workbench_app import Workbench
from workbench.errors import UsageError
from workbench.examples import flow_path
from workbench.flow import dumps, load


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "team").mkdir(parents=True)
    (root / "team" / "triage.flow.yaml").write_text(dumps(load(flow_path("triage"))), encoding="utf-8")
    (root / "notes.yaml").write_text("flow: x\n", encoding="utf-8")
    (root / "broken.flow.yaml").write_text("flow: [\n", encoding="utf-8")
    (tmp_path / "secret.flow.yaml").write_text(dumps(load(flow_path("triage"))), encoding="utf-8")
    (root / "link.flow.yaml").symlink_to(tmp_path / "secret.flow.yaml")
    return root


def test_flow_under_resolves_inside_and_refuses_outside(served: Path) -> None:
    assert flow_under(served, "team/triage.flow.yaml") == (served / "team" / "triage.flow.yaml").resolve()
    assert flow_under(served, str(served / "team" / "triage.flow.yaml")).name == "triage.flow.yaml"
    for text, words in [
        ("../secret.flow.yaml", "outside the served directory"),
        (str(served.parent / "secret.flow.yaml"), "outside the served directory"),
        ("link.flow.yaml", "outside the served directory"),  # a link out is refused too
        ("team/../../secret.flow.yaml", "outside the served directory"),
        ("notes.yaml", "not a flow file"),
        ("team/missing.flow.yaml", "there is no file team/missing.flow.yaml"),
        ("  ", "give the path"),
    ]:
        with pytest.raises(UsageError, match=words):
            flow_under(served, text)


def test_app_opens_a_flow_by_path_and_says_why_not(served: Path) -> None:
    app = Workbench({"triage": flow_path("triage")}, root=served)
    assert app.session is not None and app.session.doc.path == flow_path("triage")
    assert not app.open_path("../secret.flow.yaml")
    assert "refused: ../secret.flow.yaml is outside the served directory" in app.status.object
    assert not app.open_path("broken.flow.yaml")
    assert "cannot open broken.flow.yaml" in app.status.object
    assert list(app.flows) == ["triage"]  # nothing that failed joins the list
    assert app.open_path("team/triage.flow.yaml")
    # Another flow named triage is on the list already: this one goes by its path.
    assert app.picker.value == "team/triage.flow.yaml" and "team/triage.flow.yaml" in app.picker.options
    assert app.session is not None and app.session.doc.path == served / "team" / "triage.flow.yaml"
    assert app.open_path(str(served / "team" / "triage.flow.yaml"))  # again: no second entry
    assert list(app.flows) == ["triage", "team/triage.flow.yaml"]


def test_an_app_without_a_directory_opens_its_list_only() -> None:
    app = Workbench({"triage": flow_path("triage")})
    assert not app.open_path("triage.flow.yaml")
    assert "serves no directory" in app.status.object
