"""Scenario expressions as Python: the same value, parenthesised only where Python needs it."""

from __future__ import annotations

import pytest

from forklab.diff.compare import run
from forklab.diff.script import CONSTANTS, parse, parse_line
from forklab.diff.sides import ModelSide
from forklab.diff.snippet import python_expr, render_python
from forklab.host.cgroup import V2Setup


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


def test_the_snippet_sets_the_model_up_as_the_host_was() -> None:
    """A hybrid host (pids bound to v1): the pasted Python boots the model the same way."""
    setup = V2Setup(pids=False)
    scenario = parse("t0.unshare(CLONE_NEWCGROUP)\nt0.mount('cgroup2', '/tmp', 'cgroup2')\n")
    report = run(scenario, ModelSide(v2=setup), ModelSide(v2=setup), trace=False)  # type: ignore[arg-type]
    code = render_python(report, report.model_names, setup)
    assert "ModelSide(v2=V2Setup(delegated=True, pids=False" in code
    exec(compile(code, "snippet", "exec"), {})
    assert "ModelSide()" in render_python(report, report.model_names, V2Setup())
