"""The one scenario loader of every subcommand (run, trace, tree, step, ps, status).

A scenario is a Python script (``*.py``) that uses the public API, or a file in the
sequence language of ``forklab diff`` (one call a line, ``t1 = t0.fork()``), run here on
the model only. Either way the caller gets the kernels it booted and one line per call made
(the call and its result, strace style), and every failure is one ``FILE:LINE: what`` line.
"""

from __future__ import annotations

import difflib
import inspect
import io
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import forklab
import forklab.api
from forklab.api import Kernel, SyscallError, TaskHandle
from forklab.diff.calls import ADDR, CALLS, spec
from forklab.diff.compare import Side, run_step
from forklab.diff.script import ScenarioError, Step, parse, render_step
from forklab.diff.sides import BLOCKED, DEAD, ERROR, GONE, OK, ModelSide, Outcome, TaskRef
from forklab.kernel.version import DEFAULT_VERSION
from forklab.render.results import describe_result
from forklab.uapi import errno as E
from forklab.uapi.flags import decode_clone_flags

__all__ = ["ScenarioError", "ScenarioRun", "run_scenario"]

PYTHON_SUFFIX = ".py"
# The task methods a script's calls are recorded for: every call of the sequence language, and the raw form.
RECORDED_CALLS = tuple(name for name in (*CALLS, "syscall") if hasattr(TaskHandle, name))


@dataclass
class ScenarioRun:
    kernel: Kernel  # the last kernel the scenario booted
    kernels: list[Kernel]  # every kernel it booted, in order
    lines: list[str]  # one per call made (and, for a script, each line it printed)
    names: dict[str, TaskHandle] = field(default_factory=dict)  # a sequence's task names (t0, t1, ...)


def run_scenario(
    path: Path, version: str | None = None, on_boot: Callable[[Kernel], None] | None = None
) -> ScenarioRun:
    """Run the scenario in ``path`` on the model. ``version`` replaces the kernel version it boots;
    ``on_boot`` sees each kernel it boots before the scenario's first call there."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read it: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file") from None
    if Path(path).suffix == PYTHON_SUFFIX:
        return run_python(str(path), text, version, on_boot)
    return run_sequence(str(path), text, version or DEFAULT_VERSION, on_boot)


# ---- the sequence language ---------------------------------------------------------------------


def run_sequence(filename: str, text: str, version: str, on_boot: Callable[[Kernel], None] | None) -> ScenarioRun:
    """Each call on the model side of ``forklab diff``: the same sandbox, t0 its first task.
    ``on_boot`` is called once the sandbox is set up, so it sees the scenario's calls only."""
    scenario = parse(text, filename)
    for step in scenario.steps:
        check_call(filename, step)
    model = ModelSide(version)
    side = Side(model)
    side.start()
    kernel = model.k
    if on_boot is not None:
        on_boot(kernel)
    lines: list[str] = []
    for index, step in enumerate(scenario.steps):
        try:
            outcome = run_step(side, index, step)
        except ScenarioError as err:
            raise ScenarioError(f"{filename}:{step.line}: {str(err).removeprefix(f'line {step.line}: ')}") from None
        except Exception as err:
            raise ScenarioError(f"{filename}:{step.line}: {one_line(err)}") from None
        lines.append(f"{render_step(step)} = {shown(step.call, outcome)}")
        lines.extend(resumed(side))
    names = {name: ref.handle for name, ref in side.names.items() if isinstance(ref, TaskRef)}
    return ScenarioRun(kernel, [kernel], lines, names)


def check_call(filename: str, step: Step) -> None:
    if step.call in CALLS:
        return
    close = difflib.get_close_matches(step.call, CALLS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ScenarioError(f"{filename}:{step.line}: unknown call {step.call!r}{hint}")


def resumed(side: Side) -> list[str]:
    """The calls that were asleep and have now returned, strace's ``<... resumed>`` lines."""
    lines = []
    for index, (step, outcome) in sorted(side.pending.items()):
        done = side.driver.finished(outcome)
        if done is not None:
            del side.pending[index]
            lines.append(f"<... {render_step(step)} resumed> = {shown(step.call, done)}")
    return lines


def shown(call: str, outcome: Outcome) -> str:
    """An outcome as strace prints a result: the value, or -1 and the errno with the check."""
    if outcome.status == OK:
        if spec(call).result == ADDR:
            return hex(outcome.raw)
        return describe_result(call, outcome.value)
    if outcome.status == ERROR:
        return f"-1 {E.name(outcome.errno)} ({outcome.reason or E.strerror(outcome.errno)})"
    if outcome.status == GONE:
        return "? <the task is gone>"
    if outcome.status == BLOCKED:
        return "<not made: the task is asleep in the kernel>"
    if outcome.status == DEAD:
        return "<not made: the task has exited>"
    if outcome.child is not None:
        return f"{outcome.raw} <the caller sleeps until the child execs or exits>"
    return "? <asleep>"


# ---- Python scripts ----------------------------------------------------------------------------


def run_python(filename: str, text: str, version: str | None, on_boot: Callable[[Kernel], None] | None) -> ScenarioRun:
    """Execute the script with forklab.boot observed and its tasks' calls recorded; what it prints
    becomes lines too, in order."""
    try:
        code = compile(text, filename, "exec")
    except SyntaxError as err:
        raise ScenarioError(f"{filename}:{err.lineno}: syntax error: {err.msg}") from None
    kernels: list[Kernel] = []
    lines: list[str] = []
    real_boot = forklab.api.boot

    def observed_boot(*args: Any, **kwargs: Any) -> Kernel:
        bound = inspect.signature(real_boot).bind(*args, **kwargs)
        if version is not None:
            bound.arguments["version"] = version
        kernel = real_boot(*bound.args, **bound.kwargs)
        kernels.append(kernel)
        if on_boot is not None:
            on_boot(kernel)
        return kernel

    output = LineWriter(lines)
    with (
        replaced(forklab, "boot", observed_boot),
        replaced(forklab.api, "boot", observed_boot),
        recording(filename, lines),
        redirect_stdout(output),
    ):
        try:
            exec(code, {"__name__": "__main__", "__file__": filename})
        except SystemExit as err:
            if err.code not in (None, 0):
                raise ScenarioError(f"{filename}: the script exited with status {err.code}") from None
        except Exception as err:
            raise ScenarioError(f"{filename}:{script_line(err, filename)}: {one_line(err)}") from None
        finally:
            output.flush()
    if not kernels:
        raise ScenarioError(f"{filename}: the script never booted a kernel (forklab.boot())")
    return ScenarioRun(kernels[-1], kernels, lines)


@contextmanager
def replaced(owner: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextmanager
def recording(filename: str, lines: list[str]) -> Iterator[None]:
    """Record the system calls the script itself makes (not those the API makes on its behalf)."""
    saved = {name: getattr(TaskHandle, name) for name in RECORDED_CALLS}
    for name, method in saved.items():
        setattr(TaskHandle, name, recorder(name, method, filename, lines))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(TaskHandle, name, method)


def recorder(name: str, method: Callable[..., Any], filename: str, lines: list[str]) -> Callable[..., Any]:
    @wraps(method)
    def call(task: TaskHandle, *args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_code.co_filename != filename:
            return method(task, *args, **kwargs)
        head = f"[pid {task.pid}] {name}({call_arguments(name, args, kwargs)})"
        try:
            result = method(task, *args, **kwargs)
        except SyscallError as err:
            lines.append(f"{head} = -1 {err.errno_name} ({err.reason})")
            raise
        lines.append(f"{head} = {describe_result(name, result)}")
        return result

    return call


def call_arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Arguments as strace shows them: a clone's flag word by name, addresses in hex."""
    shown_args = [argument(value) for value in args]
    if name == "clone" and args and isinstance(args[0], int):
        shown_args[0] = decode_clone_flags(args[0])
    shown_args += [
        f"{key}={decode_clone_flags(value, with_signal=False) if key == 'flags' else argument(value)}"
        for key, value in kwargs.items()
    ]
    return ", ".join(shown_args)


def argument(value: Any) -> str:
    return hex(value) if isinstance(value, int) and value > 0xFFFF else repr(value)


def script_line(err: BaseException, filename: str) -> int:
    """The line of the script the exception came through last."""
    frames = [frame for frame in traceback.extract_tb(err.__traceback__) if frame.filename == filename]
    return (frames[-1].lineno or 0) if frames else 0


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class LineWriter(io.TextIOBase):
    """A stdout that appends each complete line to ``lines``."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.partial = ""

    def write(self, text: str) -> int:
        *complete, self.partial = (self.partial + text).split("\n")
        self.lines.extend(complete)
        return len(text)

    def flush(self) -> None:
        if self.partial:
            self.lines.append(self.partial)
            self.partial = ""
