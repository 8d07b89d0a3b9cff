"""The sequence language: what parses, what does not, and how errors name the place."""

from __future__ import annotations

import re

import pytest

from forklab.diff.script import BinOp, Const, ScenarioError, Seq, Sym, load, parse, parse_line, render
from forklab.uapi import CLONE_VM, SIGCHLD


def test_a_call_with_names_constants_and_expressions() -> None:
    step = parse_line("t2 = t0.clone(CLONE_VM | SIGCHLD, stack=m1 + 0x10000)", "x", 3)
    assert step is not None
    assert (step.actor, step.call, step.targets, step.line) == ("t0", "clone", ("t2",), 3)
    flags = step.args[0]
    assert isinstance(flags, BinOp) and flags.op == "|"
    assert flags.left == Const(CLONE_VM, "CLONE_VM") and flags.right == Const(SIGCHLD, "SIGCHLD")
    key, stack = step.kwargs[0]
    assert key == "stack" and stack == BinOp("+", Sym("m1"), Const(0x10000))


def test_several_targets_lists_and_bytes() -> None:
    step = parse_line("r, w = t0.pipe()", "x")
    assert step is not None and step.targets == ("r", "w")
    step = parse_line("t0.clone3(set_tid=[1, 2])", "x")
    assert step is not None and step.kwargs[0][1] == Seq((Const(1), Const(2)))
    step = parse_line("t0.poke(m, b'ab')", "x")
    assert step is not None and step.args[1] == Const(b"ab")


def test_comments_and_blank_lines_are_skipped() -> None:
    scenario = parse("# a comment\n\nt1 = t0.fork()  # trailing\n", "s")
    assert [str(step) for step in scenario.steps] == ["t1 = t0.fork()  # trailing"]
    assert scenario.steps[0].line == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("t0.fork(", "not a call"),
        ("fork()", "expected task.call"),
        ("x = 3", "expected task.call"),
        ("t0.a.fork()", "must be made by a task name"),
        ("t0.fork(**k)", "** arguments"),
        ("t0.kill(t1, f(2))", "is not a number, string, constant or name"),
        ("a = b = t0.fork()", "one name"),
        ("t0.fork(); t0.fork()", "one call per line"),
        ("t0.x.y = t0.fork()", "only names"),
        ("import os", "expected task.call"),
    ],
)
def test_errors_name_the_place(line: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)) as info:
        parse(f"t1 = t0.fork()\n{line}\n", "my.forklab")
    assert str(info.value).startswith("my.forklab:2: ")


def test_render_round_trips() -> None:
    text = "t1 = t0.fork()\nm = t0.mmap(0x10000)\nt0.clone(CLONE_VM | SIGCHLD, stack=m + 0x10000)\nt0.kill(-t1, ~0)\n"
    steps = parse(text).steps
    assert render([parse_line(str(s), "x") for s in steps]) == text  # type: ignore[misc]
    assert [s.call for s in parse(render(steps)).steps] == ["fork", "mmap", "clone", "kill"]


def test_load_reports_a_missing_file() -> None:
    with pytest.raises(ScenarioError, match="cannot read it"):
        load("/nonexistent/x.forklab")
