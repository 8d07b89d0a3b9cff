"""System call entry and exit, and the model's run loop.

A call runs to completion, or sleeps: the kernel function raised ``WouldBlock`` and the
task waits, state S or D, with a ``PendingCall`` that is filled in when it completes. After
every call, the tasks that call woke get their turn, as they would on a real CPU once the
caller returned to user space: a new task's first run through ret_from_fork, a sleeping
call's retry, the delivery of signals to tasks back in user space.

Signals are delivered on the way back to user space, as arch_do_signal_or_restart() does:
a call that failed with -ERESTARTNOINTR is restarted after the signal; -ERESTARTSYS too,
unless a handler without SA_RESTART ran, in which case the call fails with EINTR.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.fork import schedule_tail
from forklab.kernel.ftrace import traced
from forklab.kernel.sched.core import charge, deactivate_task
from forklab.kernel.signal import get_signal
from forklab.kernel.task import PF_EXITING, TASK_DEAD, TASK_RUNNING, Task
from forklab.kernel.wait import WaitQueue
from forklab.uapi import errno as E
from forklab.uapi.signal import SA_RESTART

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine

# Virtual nanoseconds a system call costs: trace timestamps and run-time accounting.
SYSCALL_COST_NS = 1000


class PendingCall:
    """A system call asleep in the kernel; ``done`` turns True when it completes."""

    __slots__ = ("done", "errno", "gone", "known", "name", "restart", "retry", "value", "wq")

    def __init__(self, name: str, restart: Callable[[], Any]) -> None:
        self.name = name
        self.restart = restart
        self.retry: Callable[[], Any] = restart
        self.wq: WaitQueue | None = None
        # The result when it is known before the call completes (vfork's child pid).
        self.known: Any = None
        self.done = False
        self.gone = False  # the task died in the call: it never returns
        self.value: Any = None
        self.errno = 0

    def __repr__(self) -> str:
        state = "asleep" if not self.done else "gone" if self.gone else f"done value={self.value!r} errno={self.errno}"
        return f"<pending {self.name}: {state}>"


class TaskGone(Exception):
    """The task died during its own call (exit, a fatal signal): the call never returns."""


def alive(task: Task) -> bool:
    return not task.exit_state and task.state != TASK_DEAD


def returning(task: Task) -> bool:
    """Will the call's result reach user space: the task is neither dead nor on its way out."""
    return alive(task) and not task.flags & PF_EXITING


def invoke(k: Machine, task: Task, name: str, call: Callable[[], Any]) -> Any:
    """Run one system call for ``task``: its result, or a PendingCall if it sleeps.

    Raises KernelError for a failure (never a restart code) and TaskGone if the task died.
    Afterwards every task the call woke runs.
    """
    saved = k.current
    k.current = task
    k.now += SYSCALL_COST_NS
    charge(k, task, SYSCALL_COST_NS)
    try:
        return run_call(k, task, name, call, call, None)
    finally:
        if k.woken:
            run_woken(k)
        k.current = saved


def run_call(
    k: Machine,
    task: Task,
    name: str,
    restart: Callable[[], Any],
    attempt: Callable[[], Any],
    pending: PendingCall | None,
) -> Any:
    """Run ``attempt`` in ``task``'s context, handling sleep, signals and restarts.

    ``pending`` is the call's PendingCall once it has slept; a call that never sleeps, nor
    meets a signal on its way out, needs none and is not given one.
    """
    while True:
        try:
            result = attempt()
        except WouldBlock as block:
            return sleep(k, task, pending or PendingCall(name, restart), block)
        except KernelError as err:
            result = Outcome(None, err)
        if type(result) is not Outcome and quiet_return(task):
            return result
        pending = pending or PendingCall(name, restart)
        outcome = result if type(result) is Outcome else Outcome(result, None)
        value = return_to_user(k, task, pending, outcome)
        if value is not RESTART:
            return value
        attempt = pending.restart


def quiet_return(task: Task) -> bool:
    """The result goes straight to user space: the task lives, runs, and has no signal to take."""
    return task.state == TASK_RUNNING and not task.exit_state and not task.flags & PF_EXITING and not exit_work(task)


class Outcome:
    """What a call body ended with, on its way back to user space: a value or an error."""

    __slots__ = ("error", "stopped", "value")

    def __init__(self, value: Any, error: KernelError | None) -> None:
        self.value = value
        self.error = error
        self.stopped = False  # the task stopped in get_signal on its way out: it carries on there


PARKED = -2  # exit_to_user_mode(): the task is asleep in an exit, in the call it was making
RESTART = object()  # the call starts again (after a signal, -ERESTARTNOINTR or -ERESTARTSYS)


def return_to_user(k: Machine, task: Task, pending: PendingCall, outcome: Outcome) -> Any:
    """Deliver signals, then hand ``outcome`` to user space: the value, the error, EINTR, or RESTART.

    A task stopped on the way (a group stop, a ptrace stop) finishes the call only once it is
    continued: the result reaches user space after the stop, as a real task's does.
    """
    if not returning(task):
        raise TaskGone(pending.name)
    handler_flags = exit_to_user_mode(k, task, pending, outcome.stopped)
    if handler_flags == PARKED:
        return pending  # parked in an exit that has to wait
    if not returning(task):
        raise TaskGone(pending.name)
    if task.state != TASK_RUNNING:
        outcome.stopped = True
        return sleep(k, task, pending, WouldBlock(None, lambda: outcome, task.state))
    err = outcome.error
    if err is None:
        return outcome.value
    if err.errno not in (E.ERESTARTNOINTR, E.ERESTARTSYS):
        raise err
    if err.errno == E.ERESTARTSYS and handler_flags is not None and not handler_flags & SA_RESTART:
        raise KernelError(E.EINTR, f"{pending.name}: interrupted by a signal handler")
    return RESTART


def sleep(k: Machine, task: Task, pending: PendingCall, block: WouldBlock) -> PendingCall:
    """Park the task: it leaves the runqueue and waits on the queue the call named."""
    task.state = block.state
    deactivate_task(k, task)
    pending.retry = block.retry
    pending.wq = block.wq
    if block.value is not None:
        pending.known = block.value
    if block.wq is not None:
        block.wq.add(task, block.wake_if)
    task.pending_call = pending
    return pending


def resume(k: Machine, task: Task, pending: PendingCall) -> None:
    """The sleeping task was woken: retry its call, and record the outcome if it is over."""
    if pending.wq is not None:
        pending.wq.waiters.pop(task, None)
        pending.wq = None
    try:
        value = run_call(k, task, pending.name, pending.restart, pending.retry, pending)
    except KernelError as err:
        finish(task, pending, None, err.errno)
        return
    except TaskGone:
        finish(task, pending, None, 0)
        pending.gone = True
        return
    if value is not pending:
        finish(task, pending, value, 0)


def finish(task: Task, pending: PendingCall, value: Any, errno: int) -> None:
    pending.done = True
    pending.value = value
    pending.errno = errno
    if task.pending_call is pending:
        task.pending_call = None


def run_woken(k: Machine) -> None:
    """Give every woken task its turn until none is left."""
    saved = k.current
    woken = k.woken
    try:
        while woken:
            task = woken.popleft()
            if not alive(task) or task.state != TASK_RUNNING:
                continue
            k.current = task
            if task.thread.resume:
                ret_from_fork(k, task)
            elif task.pending_call is not None:
                resume(k, task, task.pending_call)
            else:
                exit_to_user_mode(k, task, in_get_signal=True)  # kicked for a signal, or let go from a stop
    finally:
        k.current = saved


@traced
def ret_from_fork(k: Machine, p: Task) -> None:
    """A new task's first run: schedule_tail, then its kernel function or the return to user space."""
    p.thread.resume = ""
    schedule_tail(k, p)
    name = p.thread.kthread_fn
    if name is None:
        exit_to_user_mode(k, p)
        return
    p.thread.kthread_fn = None
    body = KTHREAD_FUNCTIONS[name]
    try:
        run_call(k, p, name, lambda: body(k, p), lambda: body(k, p), None)
    except TaskGone:
        pass


# Kernel thread bodies by name (main.py registers kernel_init, kthreadd, kthread).
KTHREAD_FUNCTIONS: dict[str, Callable[[Machine, Task], Any]] = {}


def exit_to_user_mode(
    k: Machine, task: Task, pending: PendingCall | None = None, in_get_signal: bool = False
) -> int | None:
    """Deliver the task's pending signals; returns the sa_flags of the first handler run, if any.

    Only a task with TIF_SIGPENDING looks (a signal queued for its group and meant for another
    thread passes it by), or one that stopped in get_signal and carries on there (``in_get_signal``).
    An exit that has to wait (a pid namespace's init, a ptrace exit stop) parks ``pending``, the
    call the task was making, or a new "exit" call if it was idle in user space.
    """
    if not exit_work(task):
        return None  # nothing to deliver: the common case, kept cheap
    first: int | None = None
    while alive(task) and task.state == TASK_RUNNING and (task.tif_sigpending or in_get_signal):
        in_get_signal = False
        try:
            handled = get_signal(k, task)
        except WouldBlock as block:
            sleep(k, task, pending or PendingCall("exit", block.retry), block)
            return PARKED
        if handled is None:
            break
        if first is None:
            first = handled
    return first


def exit_work(task: Task) -> bool:
    """Is there anything for exit_to_user_mode to look at: a signal, a stop, a ptrace report."""
    signal = task.signal
    return bool(task.pending.signal or signal.shared_pending.signal or signal.flags or task.jobctl or task.last_siginfo)
