"""Layout: rails/ and kernels/ at the root install as workbench.rails/kernels and shadow nothing.

The root folders are not packages (no ``__init__.py``): ``workbench/rails`` and
``workbench/kernels`` hold the initialiser and a link to each root module
(docs/architecture.md, "Layout"). From the repository root, bare ``import kernels`` must find
the Hugging Face distribution that transformers imports, never this project's folder.
"""

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
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
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
    assert "workbench = workbench.cli:entry" in wheel.read(entry).decode()


def test_wheel_carries_the_license(wheel):
    names = set(wheel.namelist())
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    text = wheel.read(license_file).decode()
    assert text == (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Copyright 2026 The Agent Workbench authors" in text
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()


def test_installed_package_imports_through_the_links():
    import workbench.kernels
    import workbench.rails

    assert Path(workbench.rails.__file__).parent == ROOT / "workbench" / "rails"
    assert Path(workbench.kernels.__file__).parent == ROOT / "workbench" / "kernels"
    # The modules are the root folders' files, reached through the links.
    assert Path(workbench.rails.prover.__file__).resolve() == ROOT / "rails" / "prover.py"
    assert workbench.__version__ != "0.0.0+unknown"


@pytest.mark.parametrize("folder", ["rails", "kernels"])
def test_every_root_module_is_linked_and_nothing_else(folder):
    root_modules = {p.name for p in (ROOT / folder).glob("*.py")}
    assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/ must not be a regular package"
    linked = {}
    for path in (ROOT / "workbench" / folder).glob("*.py"):
        if path.name == "__init__.py":
            assert not path.is_symlink()
            continue
        assert path.is_symlink(), f"workbench/{folder}/{path.name} must be a link into {folder}/"
        linked[path.name] = path.resolve()
    assert set(linked) == root_modules, (
        f"add or remove links: ln -s ../../{folder}/NAME.py workbench/{folder}/"
    )
    for name, target in linked.items():
        assert target == ROOT / folder / name


def _from_root(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with the repository root as the working directory (sys.path[0])."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_bare_names_from_the_root_never_find_the_project_folders():
    code = (
        "import importlib.util as u, json\n"
        "out = {}\n"
        "for name in ('kernels', 'rails'):\n"
        "    spec = u.find_spec(name)\n"
        "    where = None if spec is None else list(spec.submodule_search_locations or [])\n"
        "    out[name] = None if spec is None else (spec.origin, where)\n"
        "print(json.dumps(out))\n"
    )
    proc = _from_root(code)
    assert proc.returncode == 0, proc.stderr
    import json

    found = json.loads(proc.stdout)
    for name, where in found.items():
        if where is None:
            continue
        origin, locations = where
        # Either an installed distribution (a regular package outside the repository) or
        # nothing importable; never a module of ours.
        assert origin is None or not Path(origin).resolve().is_relative_to(ROOT / name), (name, origin)
        if origin is None:  # a namespace package: only this folder, holding no initialiser
            assert all(not (Path(p) / "__init__.py").exists() for p in locations)


def test_transformers_builds_a_model_from_the_root():
    """transformers 5 imports the Hugging Face ``kernels`` distribution when it is installed."""
    pytest.importorskip("transformers")
    code = (
        "import kernels, transformers\n"
        "from pathlib import Path\n"
        "ours = Path.cwd() / 'kernels'\n"
        "assert not Path(kernels.__file__).resolve().is_relative_to(ours), kernels.__file__\n"
        "cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,\n"
        "    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)\n"
        "model = transformers.LlamaForCausalLM(cfg)\n"
        "import torch\n"
        "print(tuple(model(torch.tensor([[1, 2, 3]])).logits.shape))\n"
    )
    proc = _from_root(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 3, 64)"
