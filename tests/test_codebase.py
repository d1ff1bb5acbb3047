"""The codebase keeps its layers and its lint: checked on every run of the suite."""

from __future__ import annotations

import operator
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    return found


def test_import_layers_hold():
    result = subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean():
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "."],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_package_shadows_the_standard_library():
    shadowing = [
        p.name
        for p in REPO_ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name in sys.stdlib_module_names
    ]
    assert shadowing == []
    assert Path(operator.__file__).parent != REPO_ROOT / "operator"


OPERATOR_MODULE_MAX_LINES = 400
"""Past this, a module of the operator does more than one job: split it by concern."""


def test_no_operator_module_is_over_400_lines():
    too_long = {
        str(path.relative_to(REPO_ROOT)): lines
        for path in sorted((REPO_ROOT / "operator").rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > OPERATOR_MODULE_MAX_LINES
    }
    assert too_long == {}, f"split these by concern: {too_long}"


def test_test_module_basenames_are_unique():
    # The suite imports test modules by basename (rootdir-relative, no packages), so two
    # modules with one basename stop collection of the whole suite.
    seen: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(REPO_ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_the_tests_the_docs_name_exist():
    """Docs say which test covers what (docs/security.md's findings, for one): a renamed
    or removed test must not leave them pointing at nothing."""
    named = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
    missing = []
    for doc in sorted([*(REPO_ROOT / "docs").glob("*.md"), REPO_ROOT / "README.md"]):
        for path, test in named.findall(doc.read_text()):
            source = REPO_ROOT / path
            if not source.is_file():
                missing.append(f"{doc.name}: {path}")
            elif test and not re.search(rf"^(async )?def {test}\(", source.read_text(), re.M):
                missing.append(f"{doc.name}: {path}::{test}")
    assert missing == []
