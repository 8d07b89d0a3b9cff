"""Scenario expressions as Python: the same value, parenthesised only where Python needs it."""

from __future__ import annotations

import pytest

from forklab.diff.script import CONSTANTS, parse_line
from forklab.diff.snippet import python_expr


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("CLONE_VM | CLONE_FS | SIGCHLD", "CLONE_VM | CLONE_FS | SIGCHLD"),
        ("m + 8", "m + 8"),
        ("1 << (SIGUSR1 - 1)", "1 << (SIGUSR1 - 1)"),
        ("10 - (4 - 3)", "10 - (4 - 3)"),
        ("~(CLONE_VM | CLONE_FS)", "~(CLONE_VM | CLONE_FS)"),
        ("[1, 777]", "[1, 777]"),
        ("0x100000000 | SIGCHLD", "0x100000000 | SIGCHLD"),
    ],
)
def test_python_expr(text: str, python: str) -> None:
    step = parse_line(f"t0.call({text})", "x")
    assert step is not None
    assert python_expr(step.args[0]) == python
    names = dict(CONSTANTS, m=4096)
    assert eval(python, {}, names) == eval(text, {}, names)  # the same value either way
