"""The sequence language: one system call per line, written like a Python call.

    t1 = t0.fork()                         # the new task gets the name t1
    m = t0.mmap(65536)
    t2 = t0.clone(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, stack=m + 65536)
    fd = t1.open("/dev/null", O_RDONLY)
    r, w = t0.pipe()
    t1.exit(3)
    t0.wait4(t1, 0)                        # a task name as an argument is its pid, as the caller sees it

A line is parsed, never executed as Python: the left side names results, the receiver is a
task name, the arguments are numbers, strings, bytes, Linux constants (CLONE_*, SIG*, ...),
names bound earlier, and | & + - * << ~ between them. ``t0`` is the first task: pid 1 of a
fresh user, pid, mount, uts and ipc namespace.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import forklab.uapi as uapi

# Every constant a scenario may name: the uapi numbers plus SIG_DFL/SIG_IGN and the __W options.
CONSTANTS: dict[str, int] = {
    name: value
    for name, value in vars(uapi).items()
    if isinstance(value, int) and (name.isupper() or name.startswith("__W"))
}
CONSTANTS.update(SIG_DFL=0, SIG_IGN=1)
FIRST_TASK = "t0"


class ScenarioError(ValueError):
    """A line that is not a call in the sequence language; the message names file and line."""


@dataclass(frozen=True)
class Const:
    value: object
    name: str = ""  # the constant's name, when the scenario wrote one (CLONE_VM)


@dataclass(frozen=True)
class Sym:
    name: str


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr
    invert: bool  # ~x rather than -x


@dataclass(frozen=True)
class Seq:
    items: tuple[Expr, ...]


Expr = Const | Sym | BinOp | Neg | Seq


@dataclass(frozen=True)
class Step:
    """One call: ``targets = actor.call(*args, **kwargs)``."""

    actor: str
    call: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    targets: tuple[str, ...] = ()
    line: int = 0
    text: str = ""

    def __str__(self) -> str:
        return self.text or render_step(self)


@dataclass
class Scenario:
    steps: list[Step] = field(default_factory=list)
    name: str = "<scenario>"


_OPS = {ast.BitOr: "|", ast.BitAnd: "&", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.LShift: "<<"}


def parse_expr(node: ast.expr, where: str) -> Expr:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str | bytes | bool | type(None)):
        return Const(node.value)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return Const(CONSTANTS[node.id], node.id)
        return Sym(node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return BinOp(_OPS[type(node.op)], parse_expr(node.left, where), parse_expr(node.right, where))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Invert):
        return Neg(parse_expr(node.operand, where), isinstance(node.op, ast.Invert))
    if isinstance(node, ast.List | ast.Tuple):
        return Seq(tuple(parse_expr(item, where) for item in node.elts))
    raise ScenarioError(f"{where}: {ast.unparse(node)!r} is not a number, string, constant or name")


def parse_line(text: str, where: str, line: int = 0) -> Step | None:
    """One line of a scenario; None for a blank line or a comment."""
    source = text.strip()
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as err:
        raise ScenarioError(f"{where}: not a call: {err.msg}") from None
    if not tree.body:
        return None
    if len(tree.body) != 1:
        raise ScenarioError(f"{where}: one call per line")
    statement = tree.body[0]
    targets: tuple[str, ...] = ()
    if isinstance(statement, ast.Assign):
        if len(statement.targets) != 1:
            raise ScenarioError(f"{where}: one name (or a, b) on the left")
        targets = _targets(statement.targets[0], where)
        value = statement.value
    elif isinstance(statement, ast.Expr):
        value = statement.value
    else:
        raise ScenarioError(f"{where}: expected task.call(...) or name = task.call(...)")
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)):
        raise ScenarioError(f"{where}: expected task.call(...)")
    receiver = value.func.value
    if not isinstance(receiver, ast.Name):
        raise ScenarioError(f"{where}: the call must be made by a task name, like t0.fork()")
    args = tuple(parse_expr(arg, where) for arg in value.args)
    kwargs: list[tuple[str, Expr]] = []
    for keyword in value.keywords:
        if keyword.arg is None:
            raise ScenarioError(f"{where}: ** arguments are not allowed")
        kwargs.append((keyword.arg, parse_expr(keyword.value, where)))
    return Step(receiver.id, value.func.attr, args, tuple(kwargs), targets, line, source)


def _targets(node: ast.expr, where: str) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Tuple) and all(isinstance(item, ast.Name) for item in node.elts):
        return tuple(item.id for item in node.elts)  # type: ignore[attr-defined]
    raise ScenarioError(f"{where}: only names (or a, b) can receive a result")


def parse(text: str, name: str = "<scenario>") -> Scenario:
    scenario = Scenario(name=name)
    for number, line in enumerate(text.splitlines(), 1):
        step = parse_line(line, f"{name}:{number}", number)
        if step is not None:
            scenario.steps.append(step)
    return scenario


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read it: {err.strerror}") from None
    return parse(text, str(path))


def render_expr(expr: Expr) -> str:
    if isinstance(expr, Const):
        value = expr.value
        if expr.name:
            return expr.name
        return hex(value) if isinstance(value, int) and value > 0xFFFF else repr(value)
    if isinstance(expr, Sym):
        return expr.name
    if isinstance(expr, BinOp):
        return f"{render_expr(expr.left)} {expr.op} {render_expr(expr.right)}"
    if isinstance(expr, Neg):
        return ("~" if expr.invert else "-") + render_expr(expr.operand)
    return "[" + ", ".join(render_expr(item) for item in expr.items) + "]"


def render_step(step: Step) -> str:
    args = [render_expr(arg) for arg in step.args] + [f"{key}={render_expr(value)}" for key, value in step.kwargs]
    call = f"{step.actor}.{step.call}({', '.join(args)})"
    return f"{', '.join(step.targets)} = {call}" if step.targets else call


def render(steps: list[Step]) -> str:
    return "\n".join(render_step(step) for step in steps) + "\n"
