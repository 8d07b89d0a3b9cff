"""Differences between the model and the host that have a known cause, each with its reason.

A difference that one of these explains is listed under its name in every report; it is
never dropped. Anything else is a disagreement.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from forklab.uapi import errno as E
from forklab.uapi.ptrace import PTRACE_EVENT_CLONE, PTRACE_EVENT_FORK, PTRACE_EVENT_STOP, PTRACE_EVENT_VFORK
from forklab.uapi.signal import SIGTRAP


@dataclass(frozen=True)
class Difference:
    """One place where the two sides did not match."""

    step: int  # index of the step it appeared after; -1 for the end of the run
    kind: str  # "result", "pending", "tasks", "status", "trace"
    what: str  # the step's text, or "t1 State", or the trace event
    model: str
    host: str
    explained_by: str = ""


HOST_TIMING = "host-timing"


@dataclass(frozen=True)
class Known:
    name: str
    reason: str
    matches: Callable[[Difference], bool]


def _result_of(prefix: str) -> Callable[[Difference], bool]:
    return lambda d: d.kind == "result" and prefix in d.what


KNOWN: tuple[Known, ...] = (
    Known(
        "no-fault-injection",
        "the host kernel is built without CONFIG_FAULT_INJECTION: /proc/*/fail-nth does not exist there",
        lambda d: "fail-nth" in d.what and d.host == f"-{E.name(E.ENOENT)}",
    ),
    Known(
        "kernel-release",
        "uname's release and version name the host's build (6.18.44); the model reports its profile",
        lambda d: d.kind == "result" and ".uname(" in d.what and _same_but(d, (2, 3)),
    ),
    Known(
        "peek-short-read",
        "peek on the host is process_vm_readv, which returns a short count at a hole; the model gives EFAULT",
        lambda d: _result_of(".peek(")(d) and d.model == f"-{E.name(E.EFAULT)}" and d.host.startswith("b"),
    ),
    Known(
        "concurrent-order",
        "tasks the host runs at the same time (a pid namespace's tasks killed together, a signal's"
        " victims) interleave their tracepoint lines by timing; each task's own lines agree in order",
        lambda d: d.kind == "trace" and d.what == "order of trace lines across tasks",
    ),
    Known(
        "group-exit-race",
        "the threads of a group killed together exit at the same time on the host: which one is last"
        " (group_dead=true) is decided by timing; the lines agree otherwise",
        lambda d: d.kind == "trace" and d.what == "which thread of a dying group exits last",
    ),
    Known(
        "vfork-release-race",
        "a vfork child's exit wakes its parent before it sends the exit signal: on the host the parent"
        " may return from vfork first, then die of that signal (or, traced, stop for it; always so when"
        " the child drops a mount namespace, which waits an RCU grace period in between); the model"
        " finishes the child's exit first",
        lambda d: d.kind == "pending" and ("vfork(" in d.what or "CLONE_VFORK" in d.what) and _released_first(d),
    ),
    Known(
        "tracer-death-race",
        "a tracee held in a fork, clone or vfork event stop is let go when its tracer dies; on the"
        " host it runs at once and may return from its call before the end of the pid namespace"
        " (its init dying with the tracer) kills it; the model runs it after the dying call",
        lambda d: (
            d.kind == "pending"
            and any(f".{call}(" in d.what for call in ("fork", "clone", "clone3"))
            and d.model == "gone"
            and d.host.isdigit()
        ),
    ),
    Known(
        "kill-return-race",
        "a task killed by the caller may die, and send its exit signal to the caller, before the caller"
        " is back in user space (on the host, when both share a CPU): the caller dies of it or, traced,"
        " stops for it in its call; the model returns to the caller first",
        lambda d: (
            _killing_call(d.what)
            and (
                (d.kind == "result" and d.model == "0" and d.host in ("gone", "pending"))
                or (d.kind == "pending" and d.model == "still asleep" and d.host == "0")
            )
        ),
    ),
    Known(
        "attach-trap-race",
        "PTRACE_ATTACH/SEIZE of a stopped task returns once the tracee has re-trapped; the tracee wakes"
        " its tracer before it sends the trap's SIGCHLD, so a tracer that is itself traced stops for"
        " that SIGCHLD either in its call (the model) or just after it (on the host, when it was quicker)",
        lambda d: (
            ("(PTRACE_SEIZE," in d.what or "(PTRACE_ATTACH," in d.what)
            and (
                (d.kind == "result" and (d.model, d.host) == ("pending", "0"))
                or (d.kind == "pending" and (d.model, d.host) == ("0", "still asleep"))
            )
        ),
    ),
    Known(
        "fork-stops-race",
        "a traced fork stops twice, the parent at its fork event and the new child (traced from birth)"
        " at its first trap; a tracer asleep in wait4 is woken by the first: on the host the child, on"
        " another CPU, may not have stopped yet and the parent's event comes first; in the model both"
        " have stopped and the newest tracee (first in the tracer's list) is reported first",
        lambda d: _fork_stops_swapped(d),
    ),
    Known(
        HOST_TIMING,
        "the sequence agreed when run again: on the host the outcome depended on timing (which of"
        " two CPUs ran first, how soon a dying task was released); the model is deterministic",
        lambda d: False,  # given by the campaign after a rerun, never by the difference alone
    ),
    Known(
        "wakeup-cpu",
        "which CPU a new task is woken on depends on the host scheduler's load at that moment",
        lambda d: d.kind == "trace" and "sched_wakeup_new" in d.what and "target_cpu" in d.model + d.host,
    ),
)


def _killing_call(what: str) -> bool:
    return any(call in what for call in (".kill(", ".tgkill(", ".pidfd_send_signal(", "(PTRACE_KILL,"))


def _released_first(d: Difference) -> bool:
    """The host's parent returned a pid where the model's stopped or died of the child's exit
    signal; or one side's call ended with the task gone, the other's with a number."""
    if d.model == "still asleep" and d.host.isdigit():
        return True
    number, gone = sorted((d.model, d.host))  # digits sort before letters
    return number.isdigit() and gone == "gone"


def _fork_stops_swapped(d: Difference) -> bool:
    """wait4 gave the new child's PTRACE_EVENT_STOP in the model, a fork event on the host."""
    if d.kind != "pending" or ".wait4(" not in d.what:
        return False
    try:
        (_, model), (_, host) = ast.literal_eval(d.model), ast.literal_eval(d.host)
    except (ValueError, SyntaxError, TypeError):
        return False

    fork_events = (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE)
    return _trap_event(model) == PTRACE_EVENT_STOP and _trap_event(host) in fork_events


def _trap_event(status: object) -> int:
    """The PTRACE_EVENT_* of a wait status that is a SIGTRAP ptrace stop; -1 for any other."""
    if not isinstance(status, int) or status & 0xFFFF != (SIGTRAP << 8 | 0x7F):
        return -1
    return status >> 16


def _same_but(d: Difference, fields: tuple[int, ...]) -> bool:
    """Two tuples printed with repr that differ only at ``fields``."""
    try:
        model, host = ast.literal_eval(d.model), ast.literal_eval(d.host)
    except (ValueError, SyntaxError):
        return False
    if not (isinstance(model, tuple) and isinstance(host, tuple) and len(model) == len(host)):
        return False
    return all(m == h for index, (m, h) in enumerate(zip(model, host, strict=True)) if index not in fields)


def explain(difference: Difference) -> Difference:
    for known in KNOWN:
        if known.matches(difference):
            return Difference(**{**difference.__dict__, "explained_by": known.name})
    return difference


def reason(name: str) -> str:
    return next((known.reason for known in KNOWN if known.name == name), "")
