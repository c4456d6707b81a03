"""The repository is self-contained: docs and comments point only at files it holds.

No file refers to design notes kept outside the repository (CHANGELOG.md may, as history);
every relative link in README.md and docs/*.md reaches a file (and a heading, when it names
one); every ``docs/<page>.md, "<heading>"`` reference in code or docs names a real heading;
every ``workbench ...`` command that docs, docstrings and the trace-lock error suggest exists.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Split so that this file does not match itself.
OUTSIDE = ("DESIGN" + ".md", "STACK" + ".md", "ANCHORS" + ".md", "DESIGN" + " §", ".." + "/shared")
HISTORY = {"CHANGELOG.md"}
# Never part of the repository: virtual environments, caches, build output, and a checkout of
# shared notes that some environments place beside the code.
NOT_OURS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    ".workbench",
    "build",
    "dist",
    "shared",
}


def _repository_files() -> list[str]:
    """Tracked files (``git ls-files``), or, outside a git checkout, the tree minus NOT_OURS."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
        return [name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in NOT_OURS and not d.endswith(".egg-info")]
            found += [(Path(folder) / f).relative_to(ROOT).as_posix() for f in files]
        return found


FILES = _repository_files()


def _text(name: str) -> str:
    return (ROOT / name).read_bytes().decode("utf-8", errors="ignore")


def test_the_file_list_is_the_repository():
    assert {"README.md", "docs/architecture.md", "workbench/cli.py", "LICENSE"} <= set(FILES)


def test_nothing_refers_to_notes_outside_the_repository():
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in FILES
        if name not in HISTORY and (ROOT / name).is_file()
        for number, line in enumerate(_text(name).splitlines(), 1)
        if any(word in line for word in OUTSIDE)
    ]
    assert found == [], "point these at docs/architecture.md (or state the fact in place)"


_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group()[1:-1], heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    prose = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.M)]


MARKDOWN = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN)
def test_relative_links_reach_a_file_and_heading(page):
    source = ROOT / page
    prose = _CODE_SPAN.sub("", _FENCE.sub("", source.read_text(encoding="utf-8")))
    broken = []
    for target in _LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        path = (source.parent / file_part).resolve() if file_part else source
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in {_anchor(h) for h in _headings(path)}:
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    assert broken == []


_SECTION_REF = re.compile(r"(docs/[\w.-]+\.md),\s+\"([^\"\n]+)\"")


def test_section_references_name_real_headings():
    refs = [
        (name, doc, section)
        for name in FILES
        if (ROOT / name).is_file()
        for doc, section in _SECTION_REF.findall(_text(name))
    ]
    assert any(doc == "docs/architecture.md" for _, doc, _ in refs)
    missing = [
        f'{name}: {doc}, "{section}"'
        for name, doc, section in refs
        if not (ROOT / doc).is_file() or section not in _headings(ROOT / doc)
    ]
    assert missing == []


_COMMAND_SPAN = re.compile(r"`{1,2}(workbench [^`\n]+)`{1,2}")
_COMMAND_LINE = re.compile(r"^\s*(?:\$\s+)?(workbench [^\n#]+)", re.M)
_PLANNED = re.compile(r"^## Planned$.*?(?=^## |\Z)", re.M | re.S)


def _command_path(text: str) -> tuple[str, ...]:
    """The subcommand words of ``workbench ...`` text: ``("traces", "show")``."""
    words = []
    for word in text.split()[1:3]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return tuple(words)


def _suggested_commands() -> set[tuple[str, tuple[str, ...]]]:
    from workbench.traces.db import TraceLockedError

    found = set()
    for page in MARKDOWN:
        text = _PLANNED.sub("", (ROOT / page).read_text(encoding="utf-8"))  # not built yet
        found |= {(page, _command_path(c)) for c in _COMMAND_SPAN.findall(text)}
        fenced = "\n".join(m.group() for m in _FENCE.finditer(text))
        found |= {(page, _command_path(c)) for c in _COMMAND_LINE.findall(fenced)}
    for name in FILES:
        if name.endswith(".py") and name.startswith(("workbench/", "rails/", "kernels/")):
            found |= {(name, _command_path(c)) for c in _COMMAND_SPAN.findall(_text(name))}
    message = str(TraceLockedError(Path("traces.duckdb"), 4242, "detail"))
    found |= {("the trace-lock error", _command_path(c)) for c in _COMMAND_SPAN.findall(message)}
    return {(where, path) for where, path in found if path}


def test_suggested_commands_exist(capsys):
    from workbench.cli import build_parser

    commands = _suggested_commands()
    assert ("the trace-lock error", ("traces", "serve")) in commands
    missing = []
    for where, path in sorted(commands):
        try:
            build_parser().parse_args([*path, "--help"])
        except SystemExit as exc:
            if exc.code != 0:
                missing.append(f"{where}: workbench {' '.join(path)}")
    capsys.readouterr()
    assert missing == []
