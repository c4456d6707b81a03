"""The wheel built from the repository installs rails/ and kernels/ as workbench.rails/kernels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("workbench", "rails", "kernels"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("agent_workbench-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_maps_rails_and_kernels_under_workbench(wheel):
    names = set(wheel.namelist())
    assert "workbench/rails/__init__.py" in names
    assert "workbench/kernels/__init__.py" in names
    assert not any(n.startswith(("rails/", "kernels/")) for n in names), "bare top-level packages leaked"
    # Every module of the source folders made it into the wheel.
    for folder, installed in (("rails", "workbench/rails"), ("kernels", "workbench/kernels")):
        for path in (ROOT / folder).rglob("*.py"):
            assert f"{installed}/{path.relative_to(ROOT / folder).as_posix()}" in names


def test_wheel_ships_example_flows_and_entry_point(wheel):
    names = set(wheel.namelist())
    for flow in (ROOT / "workbench/examples/flows").glob("*.flow.yaml"):
        assert f"workbench/examples/flows/{flow.name}" in names
    for data in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert f"workbench/models/tiny/{data}" in names, f"the tiny model's {data} is not in the wheel"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "workbench = workbench.cli:main" in wheel.read(entry).decode()


def test_installed_package_imports_the_mapped_folders():
    import workbench.kernels
    import workbench.rails

    assert Path(workbench.rails.__file__).parent == ROOT / "rails"
    assert Path(workbench.kernels.__file__).parent == ROOT / "kernels"
    assert workbench.__version__ != "0.0.0+unknown"
