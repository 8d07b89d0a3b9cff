"""kernel/ptrace.c: the parts of ptrace that process creation touches.

Attaching and the tracer's side (PTRACE_SEIZE, event stops seen by wait) belong to the
lifecycle work; here a new task inherits tracing only if its creator is traced, which the
model's tasks are not until a tracer exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid import Pid
    from forklab.kernel.task import Task

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6

PT_PTRACED = 0x00000001
PT_SEIZED = 0x00010000
PT_OPT_FLAG_SHIFT = 3


def pt_event_flag(event: int) -> int:
    return 1 << (event + PT_OPT_FLAG_SHIFT)


def ptrace_event_enabled(task: Task, event: int) -> bool:
    return bool(task.ptrace & pt_event_flag(event))


def ptrace_init_task(k: Machine, current: Task, child: Task, ptrace: bool) -> None:
    """A new task starts untraced, with its real parent as parent, unless tracing is inherited."""
    child.ptraced = {}
    child.jobctl = 0
    child.ptrace = 0
    child.parent = child.real_parent
    if ptrace and current.ptrace:
        from forklab.kernel.errors import NotModelled

        raise NotModelled("inheriting a tracer at fork (ptrace arrives with the lifecycle work)")


def ptrace_event_pid(k: Machine, current: Task, event: int, pid: Pid) -> None:
    """Report ``event`` to the tracer; only reached when ptrace_event_enabled() was true."""
    from forklab.kernel.errors import NotModelled

    raise NotModelled("ptrace event stops")
