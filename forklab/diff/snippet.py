"""A sequence as Python that drives the model through the public API, to paste and run.

Each step becomes the API call it stands for (``t1 = t0.task(t0.fork())`` for a clone), a
task named as an argument becomes the pid the model passed, and every place where the host
answered differently carries a comment with both answers.
"""

from __future__ import annotations

from typing import Any

from forklab.diff.calls import FDS, TASK, spec
from forklab.diff.compare import Report
from forklab.diff.script import CONSTANTS, BinOp, Const, Expr, Neg, Seq, Step, Sym
from forklab.diff.sides import BLOCKED, DEAD, ERROR, OK, PENDING, UNBOUND, Outcome, TaskRef
from forklab.host.cgroup import V2Setup

INDENT = "    "


def render_python(report: Report, names: dict[str, Any], v2: V2Setup | None = None) -> str:
    """The report's steps as Python; ``names`` are the model side's bound names (to tell tasks);
    ``v2`` the cgroup v2 setup the model side mirrored, when not the default one."""
    differing = {d.step for d in report.differences if d.kind in ("result", "pending") and not d.explained_by}
    used = sorted({name for step, _, _ in report.outcomes for name in constants_in(step)})
    lines = [
        '"""' + (report.scenario.name or "a forklab sequence") + ', replayed on the model."""',
        "from forklab.diff.sides import ModelSide",
    ]
    if used:
        lines.append(f"from forklab.uapi import {', '.join(used)}")
    side = "ModelSide()"
    if v2 is not None and v2 != V2Setup():
        lines.append("from forklab.host.cgroup import V2Setup")
        side = f"ModelSide(v2={v2!r})"
    lines += ["", f"t0 = {side}.start()  # pid 1 of a fresh sandbox, set up as the host's is"]
    for index, (step, model, host) in enumerate(report.outcomes):
        note = f"model: {model}, host: {host}" + ("  <- differs" if index in differing else "")
        lines += render_step(step, model, note, names)
    return "\n".join(lines) + "\n"


def render_step(step: Step, model: Outcome, note: str, names: dict[str, Any]) -> list[str]:
    args, kwargs = model.args
    rendered = [argument(expr, value, names) for expr, value in zip(step.args, args, strict=False)]
    rendered += [f"{key}={argument(expr, kwargs.get(key), names)}" for key, expr in step.kwargs]
    call = f"{step.actor}.{step.call}({', '.join(rendered)})"
    kind = spec(step.call).result
    if kind == TASK:
        call = f"{step.actor}.task({call})"
    target = ", ".join(step.targets) if kind == FDS else step.targets[0] if step.targets else ""
    if model.status in (DEAD, BLOCKED, UNBOUND):
        return [f"# {step}  ({note}: the call is not made on the model)"]
    if model.status != ERROR:
        assign = f"{target} = " if target and model.status in (OK, PENDING) else ""
        return [f"{assign}{call}  # {note}"]
    return [
        "try:",
        f"{INDENT}{call}",
        "except OSError as err:",
        f"{INDENT}print({str(step)!r}, err)  # {note}",
    ]


def argument(expr: Expr, value: Any, names: dict[str, Any]) -> str:
    """The expression as the scenario wrote it, unless it names a task: then the pid passed."""
    if mentions_task(expr, names):
        return repr(value)
    return python_expr(expr)


def mentions_task(expr: Expr, names: dict[str, Any]) -> bool:
    if isinstance(expr, Sym):
        return isinstance(names.get(expr.name), TaskRef)
    if isinstance(expr, BinOp):
        return mentions_task(expr.left, names) or mentions_task(expr.right, names)
    if isinstance(expr, Neg):
        return mentions_task(expr.operand, names)
    if isinstance(expr, Seq):
        return any(mentions_task(item, names) for item in expr.items)
    return False


def python_expr(expr: Expr, within: str = "") -> str:
    """Python for ``expr``; a chain of one operator (a | b | c) needs no parentheses, a
    different operator inside one does."""
    if isinstance(expr, Const):
        if expr.name:
            return expr.name
        value = expr.value
        return hex(value) if isinstance(value, int) and value > 0xFFFF else repr(value)
    if isinstance(expr, Sym):
        return expr.name
    if isinstance(expr, BinOp):
        text = f"{python_expr(expr.left, expr.op)} {expr.op} {python_expr(expr.right, expr.op + '>')}"
        return text if within in ("", expr.op) else f"({text})"
    if isinstance(expr, Neg):
        return ("~" if expr.invert else "-") + python_expr(expr.operand, "unary")
    return "[" + ", ".join(python_expr(item) for item in expr.items) + "]"


def constants_in(step: Step) -> set[str]:
    found: set[str] = set()

    def walk(expr: Expr) -> None:
        if isinstance(expr, Const) and expr.name in CONSTANTS:
            found.add(expr.name)
        elif isinstance(expr, BinOp):
            walk(expr.left)
            walk(expr.right)
        elif isinstance(expr, Neg):
            walk(expr.operand)
        elif isinstance(expr, Seq):
            for item in expr.items:
                walk(item)

    for expr in (*step.args, *(value for _, value in step.kwargs)):
        walk(expr)
    return found
