"""Tracepoints (include/trace/events/sched.h, task.h) and a ring buffer like tracefs's.

Events are recorded as tuples and formatted only when read, with the TP_printk formats of
the selected kernel. ``trace_text`` renders the buffer as /sys/kernel/tracing/trace does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from forklab.kernel.version import Behaviour

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

EVENTS = (
    "task_newtask",
    "sched_process_fork",
    "sched_wakeup_new",
    "sched_process_exec",
    "sched_process_exit",
    "sched_process_free",
    "sched_process_wait",
)

# The irqs-off/need-resched/hardirq/preempt-depth/migrate-disable column, per event as the
# kernel emits it: sched_wakeup_new fires under the runqueue lock with interrupts off.
LATENCY_FLAGS = {"sched_wakeup_new": "d..2.", "sched_process_free": "..s1."}
DEFAULT_FLAGS = "....."


class TraceEvent(NamedTuple):
    """One recorded event: the context it fired in and its fields, unformatted."""

    ts: int  # ns of virtual time
    cpu: int
    comm: str  # the current task's comm
    pid: int  # the current task's pid
    name: str
    fields: tuple[tuple[str, object], ...]

    def text(self) -> str:
        """The event's own text, as TP_printk prints it."""
        return " ".join(f"{key}={format_field(key, value)}" for key, value in self.fields)

    def line(self) -> str:
        """The whole line of /sys/kernel/tracing/trace."""
        flags = LATENCY_FLAGS.get(self.name, DEFAULT_FLAGS)
        return f"{line_context(self.comm, self.pid, self.cpu, flags, self.ts)} {self.name}: {self.text()}"


def line_context(comm: str, pid: int, cpu: int, flags: str, ts: int) -> str:
    """The columns every line of the trace file starts with: task, CPU, flags, timestamp."""
    secs, nsecs = divmod(ts, 1_000_000_000)
    return f"{comm:>16}-{pid:<7} [{cpu:03d}] {flags} {secs:5d}.{nsecs // 1000:06d}:"


def format_field(key: str, value: object) -> str:
    if key == "clone_flags":
        return f"{value:x}"
    if key == "target_cpu":
        return f"{value:03d}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class TraceBuffer:
    """A ring buffer of events; when full the oldest are overwritten, as tracefs does."""

    def __init__(self, size: int = 200_000) -> None:
        self.enabled = True
        self.events: deque[TraceEvent] = deque(maxlen=size)
        self.written = 0

    def clear(self) -> None:
        self.events.clear()
        self.written = 0

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)


def emit(k: Machine, current: Task, name: str, fields: tuple[tuple[str, object], ...]) -> None:
    buf = k.trace
    buf.events.append(TraceEvent(k.now, current.cpu, current.comm, current.pid, name, fields))
    buf.written += 1


def trace_task_newtask(k: Machine, current: Task, p: Task, clone_flags: int) -> None:
    if k.trace.enabled:
        emit(k, current, "task_newtask", (
            ("pid", p.pid), ("comm", p.comm), ("clone_flags", clone_flags),
            ("oom_score_adj", p.signal.oom_score_adj),
        ))  # fmt: skip


def trace_sched_process_fork(k: Machine, current: Task, p: Task) -> None:
    if k.trace.enabled:
        emit(k, current, "sched_process_fork", (
            ("comm", current.comm), ("pid", current.pid), ("child_comm", p.comm), ("child_pid", p.pid),
        ))  # fmt: skip


def trace_sched_wakeup_new(k: Machine, p: Task) -> None:
    if k.trace.enabled:
        current = k.current or p
        emit(k, current, "sched_wakeup_new", (
            ("comm", p.comm), ("pid", p.pid), ("prio", p.prio), ("target_cpu", p.cpu),
        ))  # fmt: skip


def trace_sched_process_exec(k: Machine, current: Task, filename: str, old_pid: int) -> None:
    if k.trace.enabled:
        emit(k, current, "sched_process_exec", (("filename", filename), ("pid", current.pid), ("old_pid", old_pid)))


def trace_sched_process_exit(k: Machine, tsk: Task, group_dead: bool) -> None:
    if k.trace.enabled:
        fields: tuple[tuple[str, object], ...] = (("comm", tsk.comm), ("pid", tsk.pid), ("prio", tsk.prio))
        if k.has(Behaviour.EXIT_TRACE_GROUP_DEAD):
            fields += (("group_dead", group_dead),)
        emit(k, tsk, "sched_process_exit", fields)


def trace_sched_process_free(k: Machine, tsk: Task) -> None:
    if k.trace.enabled:
        current = k.current or tsk
        emit(k, current, "sched_process_free", (("comm", tsk.comm), ("pid", tsk.pid), ("prio", tsk.prio)))


def trace_sched_process_wait(k: Machine, current: Task, pid_nr: int) -> None:
    if k.trace.enabled:
        emit(k, current, "sched_process_wait", (("comm", current.comm), ("pid", pid_nr), ("prio", current.prio)))


TRACE_HEADER = """\
# tracer: {tracer}
#
# entries-in-buffer/entries-written: {entries}/{written}   #P:{cpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def trace_text(k: Machine) -> str:
    """The buffer as /sys/kernel/tracing/trace prints it."""
    buf = k.trace
    header = TRACE_HEADER.format(tracer="nop", entries=len(buf.events), written=buf.written, cpus=k.nr_cpu_ids)
    return header + "".join(event.line() + "\n" for event in buf.events)
