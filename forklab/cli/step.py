"""forklab step: a scenario stopped in the kernel's functions, as gdb stops a kernel in a lab.

The stepper is the function tracer's listener: at each traced function's entry it decides
whether to stop, and when it stops it reads commands right there, inside the model's call,
so what it prints is the state at that point of the kernel path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click

import forklab
from forklab.cli.trace import check_function, kernel_option, traced_scenario
from forklab.kernel import task as task_h
from forklab.kernel.ftrace import ENTRY, Frame, FunctionTracer
from forklab.kernel.pid import Pid
from forklab.kernel.task import Task
from forklab.render.sharing import RESOURCES, relation

PROMPT = "(forklab) "
HELP = "s: step into the next function; n: next at this depth; c: continue; p: print the task; bt: backtrace; q: quit"
ROOT = Path(forklab.__file__).resolve().parent.parent
# The __state values with a name of their own, as include/linux/sched.h names them.
STATE_NAMES = {
    getattr(task_h, name): name
    for name in ("TASK_RUNNING", "TASK_INTERRUPTIBLE", "TASK_UNINTERRUPTIBLE", "TASK_STOPPED", "TASK_TRACED",
                 "TASK_PARKED", "TASK_DEAD", "TASK_KILLABLE", "TASK_WAKING", "TASK_NEW", "TASK_IDLE")
}  # fmt: skip
PF_NAMES = sorted((value, name) for name, value in vars(task_h).items() if name.startswith("PF_"))
# The functions a new task is made within: outside them the stepper shows the current task.
CLONE_PATH = ("kernel_clone", "copy_process")
NEW_TASK = "<the new task>"  # its p->pid is still the parent's copy until alloc_pid's number is set


class Quit(BaseException):
    """q: the scenario stops where it is (not an Exception, so that nothing on the way catches it)."""


def command_source(commands: str | None, out: TextIO) -> Callable[[], str | None]:
    """Where commands come from: --commands, else a pipe, else the terminal. None when they run out."""
    if commands is not None:
        scripted: Iterator[str] = iter(word.strip() for word in commands.split(","))
    elif not sys.stdin.isatty():
        scripted = (line.strip() for line in sys.stdin)
    else:

        def ask() -> str | None:
            out.write(PROMPT)
            out.flush()
            line = sys.stdin.readline()
            return line.strip() if line else None

        return ask

    def next_scripted() -> str | None:
        command = next(scripted, None)
        if command is not None:
            out.write(f"{PROMPT}{command}\n")  # shown as if typed, so a transcript reads like a session
        return command

    return next_scripted


class Stepper:
    """Stops at breakpoints and steps; tracks the task a clone is building."""

    def __init__(self, breakpoints: tuple[str, ...], read: Callable[[], str | None], out: TextIO) -> None:
        self.breakpoints = {name: number for number, name in enumerate(breakpoints, 1)}
        self.read = read
        self.out = out
        # Without a breakpoint, stop at the first function, as gdb's starti does.
        self.mode = "s" if not breakpoints else "c"
        self.depth = 0
        self.detached = False
        self.last = ""
        self.child: Task | None = None
        self.child_pid: Pid | None = None
        self.stops = 0

    def __call__(self, event: str, frame: Frame, tracer: FunctionTracer) -> None:
        if event != ENTRY:
            self.returned(frame)
            return
        if frame.fn.__name__ == "copy_process":
            self.child = self.child_pid = None
        if self.detached:
            return
        number = self.breakpoints.get(frame.name)
        if number is not None or self.mode == "s" or (self.mode == "n" and frame.depth <= self.depth):
            self.stop(frame, tracer, number)

    def returned(self, frame: Frame) -> None:
        name = frame.fn.__name__
        if frame.error is not None:
            return
        if name == "dup_task_struct":
            self.child, self.child_pid = frame.result, None
        elif name == "alloc_pid":
            self.child_pid = frame.result

    def stop(self, frame: Frame, tracer: FunctionTracer, number: int | None) -> None:
        self.stops += 1
        where = f"Breakpoint {number}, " if number is not None else ""
        self.say(f"\n{where}{describe_frame(frame, self.child)}")
        self.backtrace(tracer)
        self.print_task(frame, tracer)
        while True:
            command = self.read()
            if command is None:
                self.say("(no more commands: the scenario runs to its end)")
                self.detached = True
                return
            command = command or self.last
            self.last = command
            if command in ("s", "step", "n", "next", "c", "continue"):
                self.mode, self.depth = command[0], frame.depth
                return
            if command in ("p", "print"):
                self.print_task(frame, tracer)
            elif command in ("bt", "backtrace", "where"):
                self.backtrace(tracer)
            elif command in ("q", "quit"):
                self.detached = True
                raise Quit(frame.name)
            else:
                self.say(f'Undefined command: "{command}". {HELP}')

    def backtrace(self, tracer: FunctionTracer) -> None:
        for index, frame in enumerate(reversed(tracer.stack)):
            self.say(f"#{index:<2} {describe_frame(frame, self.child)}")

    def print_task(self, frame: Frame, tracer: FunctionTracer) -> None:
        building = self.child is not None and any(f.fn.__name__ in CLONE_PATH for f in tracer.stack)
        if not building:
            if any(f.fn.__name__ == "copy_process" for f in tracer.stack):
                self.say("the task being built: none yet (dup_task_struct has not run)")
                return
            self.say(f"the current task: {task_label(frame.task)}")
            self.say(task_lines(frame.task, str(frame.task.pid)))
            return
        assert self.child is not None
        parent = next(f.task for f in tracer.stack if f.fn.__name__ in CLONE_PATH)
        self.say(f"the task being built by {task_label(parent)}:")
        self.say(task_lines(self.child, child_pid_text(self.child_pid)))
        self.say(sharing_line(parent, self.child))

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def task_label(task: Task) -> str:
    return f"{task.comm}-{task.pid}"


def child_pid_text(pid: Pid | None) -> str:
    """The new task's pid: what alloc_pid returned (p->pid is still the parent's copy until then)."""
    if pid is None:
        return "none yet (alloc_pid has not run)"
    nested = f" ({pid.numbers[-1][0]} in its own pid namespace)" if pid.level else ""
    return f"{pid.numbers[0][0]}{nested}, from alloc_pid"


def task_lines(task: Task, pid_text: str) -> str:
    """pid, raw __state and flags, as `p *p` would show the fields that matter here."""
    flags = "|".join(name for value, name in PF_NAMES if task.flags & value) or "0"
    state = STATE_NAMES.get(task.state, "")
    return "\n".join(
        (
            f"  pid       {pid_text}",
            f"  __state   {task.state:#06x} {state}".rstrip(),
            f"  flags     {task.flags:#010x} {flags}",
        )
    )


def sharing_line(parent: Task, child: Task) -> str:
    """Which structures the child shares with its parent so far (dup_task_struct copied every
    pointer; each copy_* step then keeps the parent's or puts its own)."""
    kinds: dict[str, list[str]] = {}
    for resource in RESOURCES:
        kinds.setdefault(relation(parent, child, resource), []).append(resource.short)
    return "\n".join(f"  {kind:<9} {' '.join(fields)}" for kind, fields in kinds.items())


def describe_frame(frame: Frame, child: Task | None) -> str:
    """``name (arg=value, ...) at file:line``, as gdb prints a frame."""
    code = frame.fn.__code__
    names = code.co_varnames[1 : code.co_argcount]  # without k, the machine
    args = ", ".join(
        f"{name}={NEW_TASK if child is not None and value is child else show_value(name, value)}"
        for name, value in zip(names, frame.args, strict=False)
    )
    path = Path(code.co_filename).resolve()
    source = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return f"{frame.name} ({args}) at {source}:{code.co_firstlineno}"


def show_value(name: str, value: Any) -> str:
    if isinstance(value, Task):
        return task_label(value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:#x}" if "flags" in name or value > 0xFFFF else str(value)
    if isinstance(value, str):
        return repr(value)
    return f"<{type(value).__name__}>"


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--break", "-b", "breakpoints", multiple=True, metavar="FUNCTION",
              help="Stop when the kernel enters FUNCTION (repeatable). "
              "Without one, stop at the first function.")  # fmt: skip
@click.option("--commands", default=None, metavar="LIST",
              help='Commands to run at the stops, comma-separated (e.g. "c,p,s,c"), '
              "instead of reading them.")  # fmt: skip
@kernel_option
def step(scenario: str, breakpoints: tuple[str, ...], commands: str | None, version: str | None) -> None:
    """Run SCENARIO and stop inside the kernel, as gdb stops a kernel under qemu: at each stop
    see the function, the backtrace and the task being built (its pid once alloc_pid ran, its
    raw __state, its flags, which structures it shares with its parent so far).

    Commands: s (step into the next function), n (next function at this depth), c (continue),
    p (print the task), bt (backtrace), q (quit). An empty line repeats the last command.
    They are read from the terminal, from a pipe, or from --commands.

    Examples:

      forklab step fork.forklab --break copy_process
      forklab step fork.py -b sched_fork -b alloc_pid --commands "c,p,c"
    """
    for name in breakpoints:
        check_function("--break", name, version)
    out = sys.stdout
    stepper = Stepper(breakpoints, command_source(commands, out), out)
    try:
        with traced_scenario(scenario, version, stepper) as run:
            lines = run.lines
    except Quit as where:
        click.echo(f"quit: the scenario stopped in {where}")
        return
    if not stepper.stops:
        click.echo("(no breakpoint was reached)")
    click.echo("\nthe scenario's calls:")
    for line in lines:
        click.echo(f"  {line}")
