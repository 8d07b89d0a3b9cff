"""The code's own checks: ruff (lint and format) and mypy --strict, as part of the test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "forklab", "tests"),
        ("ruff", "format", "--check", "forklab", "tests"),
    ],
)
def test_ruff(command: tuple[str, ...]) -> None:
    result = run(sys.executable, "-m", *command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run(sys.executable, "-m", "mypy", "forklab")
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_imports_nothing_from_the_outer_layers() -> None:
    """DESIGN.md: the model never imports from host, diff, render or cli."""
    offenders = []
    for path in (ROOT / "forklab" / "kernel").rglob("*.py"):
        text = path.read_text()
        for layer in ("host", "diff", "render", "cli", "api"):
            if f"from forklab.{layer}" in text or f"import forklab.{layer}" in text:
                offenders.append(f"{path.relative_to(ROOT)} imports forklab.{layer}")
    assert not offenders, offenders
