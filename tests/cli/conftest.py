"""Running forklab as a user runs it: the console script, in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

Forklab = Callable[..., subprocess.CompletedProcess[str]]


def run_forklab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``forklab ARGS`` with this process's environment (PYTHONPATH included), stdout a pipe."""
    script = shutil.which("forklab")
    command = [script] if script else [sys.executable, "-m", "forklab"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def forklab() -> Forklab:
    return run_forklab


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    """A user's mistake: exit status ``status``, nothing on stdout, one line on stderr naming it."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr, result.stderr
