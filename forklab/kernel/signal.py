"""kernel/signal.c: signal handlers, pending sets, sending, delivery, and telling a parent.

A handler installed by a user task is a number standing for a function in the task's
memory; delivering to it "runs" it, which changes nothing in the kernel's state but for the
mask it restores and SA_RESETHAND, exactly as a real handler that just returns would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import ns_capable
from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.kernel.invariants import all_tasks
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_PID, find_pid_ns, pid_nr_ns, pid_task, pid_tasks
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.sched.core import deactivate_task, try_to_wake_up
from forklab.kernel.task import (
    __TASK_STOPPED,
    __TASK_TRACED,
    PF_EXITING,
    PF_SIGNALED,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_STOPPED,
    TASK_TRACED,
    TASK_WAKEKILL,
)
from forklab.kernel.user_namespace import from_kuid_munged
from forklab.kernel.version import Behaviour
from forklab.kernel.wait import WaitQueue, wake_up
from forklab.uapi import errno as E
from forklab.uapi import signal as S
from forklab.uapi.capability import CAP_KILL
from forklab.uapi.ptrace import PTRACE_EVENT_STOP
from forklab.uapi.sched import CLONE_CLEAR_SIGHAND, CLONE_SIGHAND, CLONE_THREAD
from forklab.uapi.wait import CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, CLD_TRAPPED

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid import Pid
    from forklab.kernel.task import Task

SIGNAL_STOP_STOPPED = 0x00000001
SIGNAL_STOP_CONTINUED = 0x00000002
SIGNAL_GROUP_EXIT = 0x00000004
SIGNAL_CLD_STOPPED = 0x00000010
SIGNAL_CLD_CONTINUED = 0x00000020
SIGNAL_UNKILLABLE = 0x00000040
SIGNAL_CLD_MASK = SIGNAL_CLD_STOPPED | SIGNAL_CLD_CONTINUED
SIGNAL_STOP_MASK = SIGNAL_CLD_MASK | SIGNAL_STOP_STOPPED | SIGNAL_STOP_CONTINUED

SI_USER = 0
SI_KERNEL = 0x80
SI_TKILL = -6

ALL_SIGNALS = (1 << S._NSIG) - 1


def _mask(*sigs: int) -> int:
    bits = 0
    for sig in sigs:
        bits |= S.sigmask(sig)
    return bits


SIG_KERNEL_ONLY_MASK = _mask(S.SIGKILL, S.SIGSTOP)
SIG_KERNEL_STOP_MASK = _mask(S.SIGSTOP, S.SIGTSTP, S.SIGTTIN, S.SIGTTOU)
SIG_KERNEL_COREDUMP_MASK = _mask(
    S.SIGQUIT, S.SIGILL, S.SIGTRAP, S.SIGABRT, S.SIGFPE, S.SIGSEGV, S.SIGBUS, S.SIGSYS, S.SIGXCPU, S.SIGXFSZ
)
SIG_KERNEL_IGNORE_MASK = _mask(S.SIGCONT, S.SIGCHLD, S.SIGWINCH, S.SIGURG)
SYNCHRONOUS_MASK = _mask(S.SIGSEGV, S.SIGBUS, S.SIGILL, S.SIGTRAP, S.SIGFPE, S.SIGSYS)


def sig_kernel_only(sig: int) -> bool:
    return sig < S.SIGRTMIN and bool(SIG_KERNEL_ONLY_MASK & S.sigmask(sig))


def sig_kernel_ignore(sig: int) -> bool:
    return sig < S.SIGRTMIN and bool(SIG_KERNEL_IGNORE_MASK & S.sigmask(sig))


def sig_kernel_stop(sig: int) -> bool:
    return sig < S.SIGRTMIN and bool(SIG_KERNEL_STOP_MASK & S.sigmask(sig))


def sig_kernel_coredump(sig: int) -> bool:
    return sig < S.SIGRTMIN and bool(SIG_KERNEL_COREDUMP_MASK & S.sigmask(sig))


# struct k_sigaction as an immutable (handler, flags, mask); the table is copied on change.
SigAction = tuple[int, int, int]
DEFAULT_ACTION: SigAction = (S.SIG_DFL, 0, 0)
DEFAULT_ACTIONS: tuple[SigAction, ...] = (DEFAULT_ACTION,) * S._NSIG


class SigInfo:
    """kernel_siginfo: who sent a signal and why."""

    __slots__ = ("code", "pid", "signo", "status", "uid")

    def __init__(self, signo: int, code: int, pid: int = 0, uid: int = 0, status: int = 0) -> None:
        self.signo = signo
        self.code = code
        self.pid = pid
        self.uid = uid
        self.status = status


class SigPending:
    """struct sigpending: a set of pending signals and the queue of their siginfo."""

    __slots__ = ("queue", "signal")

    def __init__(self) -> None:
        self.signal = 0
        self.queue: list[SigInfo] = []


class SighandStruct:
    """struct sighand_struct: the handler table, shared by CLONE_SIGHAND."""

    __slots__ = ("action", "count")

    def __init__(self, action: tuple[SigAction, ...]) -> None:
        self.count = 1
        self.action = action


class SignalStruct:
    """struct signal_struct: what a thread group shares (pending group signals, rlimits, pids)."""

    __slots__ = (
        "curr_target",
        "flags",
        "group_exec_task",
        "group_exit_code",
        "group_stop_count",
        "has_child_subreaper",
        "is_child_subreaper",
        "leader",
        "live",
        "multiprocess",
        "notify_count",
        "nr_threads",
        "oom_score_adj",
        "oom_score_adj_min",
        "pids",
        "quick_threads",
        "rlim",
        "shared_pending",
        "sigcnt",
        "thread_head",
        "wait_chldexit",
    )

    def __init__(self, rlim: tuple[tuple[int, int], ...], oom_score_adj: int, oom_score_adj_min: int) -> None:
        self.sigcnt = 1
        self.live = 1
        self.nr_threads = 1
        self.quick_threads = 1
        self.thread_head: list[Task] = []
        self.wait_chldexit = WaitQueue()
        self.curr_target: Task | None = None
        self.shared_pending = SigPending()
        self.multiprocess: list[SigPending] = []
        self.group_exit_code = 0
        self.notify_count = 0
        self.group_exec_task: Task | None = None
        self.group_stop_count = 0
        self.flags = 0
        self.is_child_subreaper = False
        self.has_child_subreaper = False
        self.leader = False
        self.pids: list[Pid | None] = [None, None, None, None]
        self.rlim = rlim
        self.oom_score_adj = oom_score_adj
        self.oom_score_adj_min = oom_score_adj_min


# ---- fork: copy_sighand / copy_signal and their undo -----------------------------------


@traced
def copy_sighand(k: Machine, current: Task, clone_flags: int, tsk: Task) -> None:
    if clone_flags & CLONE_SIGHAND:
        sighand = current.sighand
        assert sighand is not None
        sighand.count += 1
        return
    tsk.sighand = None
    k.kmem_cache_alloc(current, "sighand_cache")
    assert current.sighand is not None
    new = SighandStruct(current.sighand.action)
    tsk.sighand = new
    if clone_flags & CLONE_CLEAR_SIGHAND:
        flush_signal_handlers(new, force_default=False)


def cleanup_sighand(k: Machine, sighand: SighandStruct) -> None:
    sighand.count -= 1
    if sighand.count == 0:
        k.kmem_cache_free("sighand_cache")


def flush_signal_handlers(sighand: SighandStruct, force_default: bool) -> None:
    """Every handler back to SIG_DFL (SIG_IGN stays unless forced); flags and masks cleared."""
    sighand.action = tuple(
        (S.SIG_IGN if handler == S.SIG_IGN and not force_default else S.SIG_DFL, 0, 0)
        for handler, _, _ in sighand.action
    )


@traced
def copy_signal(k: Machine, current: Task, clone_flags: int, tsk: Task) -> None:
    if clone_flags & CLONE_THREAD:
        return
    k.kmem_cache_alloc(current, "signal_cache")
    parent = current.signal
    sig = SignalStruct(parent.rlim, parent.oom_score_adj, parent.oom_score_adj_min)
    sig.thread_head.append(tsk)
    sig.curr_target = tsk
    tsk.signal = sig


def free_signal_struct(k: Machine, sig: SignalStruct) -> None:
    k.kmem_cache_free("signal_cache")


def put_signal_struct(k: Machine, sig: SignalStruct) -> None:
    sig.sigcnt -= 1
    if sig.sigcnt == 0:
        free_signal_struct(k, sig)


# ---- state tests ---------------------------------------------------------------------------


def task_sigpending(t: Task) -> bool:
    """TIF_SIGPENDING: set by whoever wakes the task for a signal, not by queueing alone."""
    return t.tif_sigpending


def recalc_sigpending_tsk(t: Task) -> bool:
    """Set TIF_SIGPENDING if an unblocked signal waits or a stop or trap is pending; never clears it."""
    if (t.pending.signal | t.signal.shared_pending.signal) & ~t.blocked or t.jobctl & JOBCTL_PENDING_MASK:
        t.tif_sigpending = True
        return True
    return False


def recalc_sigpending(t: Task) -> None:
    """The current task's TIF_SIGPENDING made exact: cleared when nothing is left for it."""
    if not recalc_sigpending_tsk(t):
        t.tif_sigpending = False


def calculate_sigpending(t: Task) -> None:
    """A new task's first run: signals that came during the fork may be for it too."""
    t.tif_sigpending = True
    recalc_sigpending(t)


def fatal_signal_pending(t: Task) -> bool:
    return bool(t.pending.signal & S.sigmask(S.SIGKILL))


def sig_handler(t: Task, sig: int) -> int:
    assert t.sighand is not None
    return t.sighand.action[sig - 1][0]


def sig_handler_ignored(handler: int, sig: int) -> bool:
    return handler == S.SIG_IGN or (handler == S.SIG_DFL and sig_kernel_ignore(sig))


def sig_ignored(t: Task, sig: int, force: bool) -> bool:
    """A signal that would be dropped when sent: ignored and not blocked (nor traced).

    An init ignores every signal it has no handler for, SIGKILL and SIGSTOP included, unless
    the signal is ``force``d (kernel-made, or sent from an ancestor pid namespace); the global
    init never takes SIGKILL or SIGSTOP.
    """
    if (t.blocked | t.real_blocked) & S.sigmask(sig):
        return False
    if t.ptrace and sig != S.SIGKILL:
        return False
    handler = sig_handler(t, sig)
    if sig_kernel_only(sig) and t.tgid == 1 and t.thread_pid is not None and t.thread_pid.level == 0:
        return True
    if t.signal.flags & SIGNAL_UNKILLABLE and handler == S.SIG_DFL and not (force and sig_kernel_only(sig)):
        return True
    return sig_handler_ignored(handler, sig)


JOBCTL_STOP_SIGMASK = 0xFFFF
JOBCTL_STOP_DEQUEUED = 1 << 16  # a stop signal was dequeued: a group stop may begin
JOBCTL_STOP_PENDING = 1 << 17
JOBCTL_STOP_CONSUME = 1 << 18  # this thread still counts in group_stop_count
JOBCTL_TRAP_STOP = 1 << 19
JOBCTL_TRAP_NOTIFY = 1 << 20
JOBCTL_TRAPPING = 1 << 21
JOBCTL_LISTENING = 1 << 22
JOBCTL_STOPPED = 1 << 26
JOBCTL_TRACED = 1 << 27
JOBCTL_TRAP_MASK = JOBCTL_TRAP_STOP | JOBCTL_TRAP_NOTIFY
JOBCTL_PENDING_MASK = JOBCTL_STOP_PENDING | JOBCTL_TRAP_MASK
# Model-only bits: which ptrace stop of get_signal() the task sleeps in, so that on waking it
# finishes what the kernel finishes on return from ptrace_stop() there.
JOBCTL_SIGNAL_STOP = 1 << 30  # a signal-delivery-stop: deliver what the tracer left in exit_code
JOBCTL_TRAP_STOPPED = 1 << 31  # a group-stop or PTRACE_EVENT_STOP trap


def task_set_jobctl_pending(t: Task, mask: int) -> bool:
    """Mark ``t`` for a stop or trap, unless it is already dying."""
    if fatal_signal_pending(t) or t.flags & PF_EXITING:
        return False
    if mask & JOBCTL_STOP_SIGMASK:
        t.jobctl &= ~JOBCTL_STOP_SIGMASK
    t.jobctl |= mask
    return True


def task_join_group_stop(current: Task, task: Task) -> None:
    """A new thread of a group that is stopping, or stopped (its creator let run by a tracer),
    stops too on its first run."""
    mask = current.jobctl & JOBCTL_STOP_SIGMASK
    signal = current.signal
    if signal.group_stop_count:
        signal.group_stop_count += 1
        mask |= JOBCTL_STOP_CONSUME
    elif not signal.flags & SIGNAL_STOP_STOPPED:
        return
    task_set_jobctl_pending(task, mask | JOBCTL_STOP_PENDING)


def task_clear_jobctl_pending(k: Machine, t: Task, mask: int) -> None:
    if mask & JOBCTL_STOP_PENDING:
        mask |= JOBCTL_STOP_CONSUME | JOBCTL_STOP_DEQUEUED
    t.jobctl &= ~mask
    if not t.jobctl & JOBCTL_PENDING_MASK:
        task_clear_jobctl_trapping(k, t)


def task_clear_jobctl_trapping(k: Machine, t: Task) -> None:
    """The trap a new tracer waits for is taken (or will not be): the tracer goes on."""
    from forklab.kernel.wait import wake_up

    if t.jobctl & JOBCTL_TRAPPING:
        t.jobctl &= ~JOBCTL_TRAPPING
        wake_up(k, k.bit_wait, key=t)


# ---- sigaction / sigprocmask -------------------------------------------------------------


def do_sigaction(k: Machine, current: Task, sig: int, act: SigAction | None) -> SigAction:
    """Install ``act`` (None only reads); returns the old action."""
    if not S.valid_signal(sig) or sig < 1 or (act is not None and sig_kernel_only(sig)):
        raise KernelError(E.EINVAL, f"do_sigaction: signal {sig} cannot be given a handler")
    sighand = current.sighand
    assert sighand is not None
    old = sighand.action[sig - 1]
    if act is None:
        return old
    handler, flags, mask = act
    mask &= ~SIG_KERNEL_ONLY_MASK
    actions = list(sighand.action)
    actions[sig - 1] = (handler, flags, mask)
    sighand.action = tuple(actions)
    # POSIX: ignoring a pending signal discards it, in every thread.
    if sig_handler_ignored(handler, sig):
        bit = S.sigmask(sig)
        flush_sigqueue_mask(current.signal.shared_pending, bit)
        for t in current.signal.thread_head:
            flush_sigqueue_mask(t.pending, bit)
    return old


def flush_sigqueue_mask(pending: SigPending, mask: int) -> None:
    if pending.signal & mask:
        pending.signal &= ~mask
        pending.queue = [info for info in pending.queue if not S.sigmask(info.signo) & mask]


def sigprocmask(k: Machine, current: Task, how: int, newset: int | None) -> int:
    """Change the blocked set; SIGKILL and SIGSTOP can never be blocked. Returns the old set."""
    old = current.blocked
    if newset is None:
        return old
    newset &= ~SIG_KERNEL_ONLY_MASK
    if how == S.SIG_BLOCK:
        blocked = old | newset
    elif how == S.SIG_UNBLOCK:
        blocked = old & ~newset
    elif how == S.SIG_SETMASK:
        blocked = newset
    else:
        raise KernelError(E.EINVAL, f"sigprocmask: how={how} is not SIG_BLOCK, SIG_UNBLOCK or SIG_SETMASK")
    blocked &= ALL_SIGNALS
    if task_sigpending(current) and not thread_group_empty(current):
        # A group signal it was woken for and now blocks must wake another thread instead.
        retarget_shared_pending(k, current, blocked & ~old)
    current.blocked = blocked
    recalc_sigpending(current)
    return old


def thread_group_empty(p: Task) -> bool:
    """A leader with no other thread left in the list."""
    head = p.signal.thread_head
    return p.exit_signal >= 0 and len(head) == 1 and head[0] is p


def retarget_shared_pending(k: Machine, tsk: Task, which: int) -> None:
    """``tsk`` will not take the group signals in ``which`` (it exits, or blocks them): wake the
    other threads that can, so that a signal ``tsk`` was chosen for is not left unseen."""
    retarget = tsk.signal.shared_pending.signal & which
    for t in threads_from(tsk)[1:]:
        if not retarget:
            return
        if t.flags & PF_EXITING or not retarget & ~t.blocked:
            continue
        retarget &= t.blocked
        if not task_sigpending(t):
            signal_wake_up(k, t, fatal=False)


def exit_signals(k: Machine, tsk: Task) -> None:
    """PF_EXITING: group signals pass ``tsk`` by from now on. Those it was told of go to another
    thread, and a group stop it still owed a part of counts it as done (and may be complete)."""
    tsk.flags |= PF_EXITING
    if thread_group_empty(tsk) or tsk.signal.flags & SIGNAL_GROUP_EXIT or not task_sigpending(tsk):
        return
    retarget_shared_pending(k, tsk, ~tsk.blocked & ALL_SIGNALS)
    if tsk.jobctl & JOBCTL_STOP_PENDING and task_participate_group_stop(k, tsk):
        do_notify_parent_cldstop(k, tsk, False, CLD_STOPPED)


# ---- sending -------------------------------------------------------------------------------


def send_signal_locked(k: Machine, sig: int, info: SigInfo, t: Task, group: bool) -> None:
    """Queue ``sig`` for ``t`` (or its whole group) unless it is ignored.

    The signal is forced past an init's immunity when the kernel made it, or when the sender
    cannot see the target's pid namespace (an ancestor namespace killing a container's init).
    """
    sender = k.current
    force = info.code == SI_KERNEL or (
        sender is not None and sender.thread_pid is not None and not pid_nr_ns(sender.thread_pid, task_active_pid_ns(t))
    )
    if force and info.code != SI_KERNEL:
        info.pid = 0
    if not prepare_signal(k, sig, t, force):
        return
    if not group and t.exit_state:
        return  # a zombie thread keeps no signal of its own (none shows on the host 6.18.44)
    pending = t.signal.shared_pending if group else t.pending
    bit = S.sigmask(sig)
    # Non-realtime signals are not queued twice.
    if sig < S.SIGRTMIN and pending.signal & bit:
        return
    pending.queue.append(info)
    pending.signal |= bit
    if group:
        for delayed in t.signal.multiprocess:
            delayed.signal |= bit
    complete_signal(k, sig, t, group)


def prepare_signal(k: Machine, sig: int, p: Task, force: bool) -> bool:
    """Stop and continue signals cancel each other; an ignored signal is dropped."""
    signal = p.signal
    if signal.flags & SIGNAL_GROUP_EXIT:
        # The group is dying (the model has no core dumps to interrupt): since 5.17 nothing
        # more is queued; before, the signal was kept unless ignored.
        if k.has(Behaviour.DROP_SIGNALS_WHEN_DYING):
            return False
        return not sig_ignored(p, sig, force)
    if sig_kernel_stop(sig):
        flush_sigqueue_mask(signal.shared_pending, S.sigmask(S.SIGCONT))
        for t in signal.thread_head:
            flush_sigqueue_mask(t.pending, S.sigmask(S.SIGCONT))
    elif sig == S.SIGCONT:
        from forklab.kernel.ptrace import PT_SEIZED

        stop_mask = SIG_KERNEL_STOP_MASK
        flush_sigqueue_mask(signal.shared_pending, stop_mask)
        for t in signal.thread_head:
            flush_sigqueue_mask(t.pending, stop_mask)
            task_clear_jobctl_pending(k, t, JOBCTL_STOP_PENDING)
            if not t.ptrace & PT_SEIZED:
                t.jobctl &= ~JOBCTL_STOPPED
                wake_up_state(k, t, __TASK_STOPPED)
            else:
                ptrace_trap_notify(k, t)
        # The parent hears of it when a thread of the group next runs (get_signal): of the end
        # of a stop, or of a stop that SIGCONT cut short.
        why = 0
        if signal.flags & SIGNAL_STOP_STOPPED:
            why = SIGNAL_CLD_CONTINUED
        elif signal.group_stop_count:
            why = SIGNAL_CLD_STOPPED
        if why:
            signal_set_stop_flags(signal, why | SIGNAL_STOP_CONTINUED)
            signal.group_stop_count = 0
            signal.group_exit_code = 0
    return not sig_ignored(p, sig, force)


def signal_set_stop_flags(signal: SignalStruct, flags: int) -> None:
    """The group's stop state changes; the other flags (SIGNAL_UNKILLABLE) stay."""
    signal.flags = (signal.flags & ~SIGNAL_STOP_MASK) | flags


def wants_signal(k: Machine, sig: int, p: Task) -> bool:
    """Can ``p`` take ``sig`` now: not blocked, not exiting, not already busy with another signal
    (TIF_SIGPENDING), unless it is the one running."""
    if p.blocked & S.sigmask(sig) or p.flags & PF_EXITING:
        return False
    if sig == S.SIGKILL:
        return True
    if p.state & (__TASK_STOPPED | __TASK_TRACED):
        return False
    return p is k.current or not task_sigpending(p)


def complete_signal(k: Machine, sig: int, p: Task, group: bool) -> None:
    """Pick the thread to wake; a fatal signal takes the whole group down at once."""
    signal = p.signal
    if wants_signal(k, sig, p):
        target = p
    elif not group or len(signal.thread_head) == 1:
        return
    else:
        start = signal.curr_target if signal.curr_target in signal.thread_head else p
        candidates = [t for t in threads_from(start) if wants_signal(k, sig, t)]
        if not candidates:
            return
        target = signal.curr_target = candidates[0]
    if (
        sig_fatal(p, sig)
        and not signal.flags & SIGNAL_GROUP_EXIT
        # An init's group dies here only of SIGKILL (which reaches it only from an ancestor
        # namespace); another fatal signal, queued because the thread it was sent to blocks it,
        # is dropped by the thread that takes it. Seen on the host (6.18.44): forklab diff
        # scenario 26 - the ShdPnd of the init's zombie keeps the SIGKILL, as after this path.
        and (sig == S.SIGKILL or not signal.flags & SIGNAL_UNKILLABLE)
        and not S.sigmask(sig) & target.real_blocked
        and (sig == S.SIGKILL or not p.ptrace)
        and not sig_kernel_coredump(sig)
    ):
        # The whole group dies: every thread gets SIGKILL now, woken in list order from the
        # leader (__for_each_thread). On the host they then race on two CPUs.
        signal.flags = SIGNAL_GROUP_EXIT
        signal.group_exit_code = sig
        signal.group_stop_count = 0
        for t in list(signal.thread_head):
            t.jobctl &= ~JOBCTL_PENDING_MASK
            t.pending.signal |= S.sigmask(S.SIGKILL)
            signal_wake_up(k, t, fatal=True)
        return
    signal_wake_up(k, target, fatal=sig == S.SIGKILL)


def sig_fatal(t: Task, sig: int) -> bool:
    handler = sig_handler(t, sig)
    return not sig_kernel_ignore(sig) and not sig_kernel_stop(sig) and handler == S.SIG_DFL


def signal_wake_up(k: Machine, t: Task, fatal: bool) -> None:
    """Make ``t`` notice the signal: wake it from an interruptible (or, if fatal, killable) sleep."""
    signal_wake_up_state(k, t, TASK_WAKEKILL | __TASK_STOPPED | __TASK_TRACED if fatal else 0)


def signal_wake_up_state(k: Machine, t: Task, state: int) -> None:
    t.tif_sigpending = True
    if state & (__TASK_STOPPED | __TASK_TRACED) and t.state & state:
        t.jobctl &= ~(JOBCTL_STOPPED | JOBCTL_TRACED)
    woken = try_to_wake_up(k, t, TASK_INTERRUPTIBLE | state)
    if not woken and t.pending_call is None and not t.exit_state and t.state == TASK_RUNNING:
        # Running in user space: it takes the signal as soon as it gets the CPU.
        k.woken.append(t)


def ptrace_signal_wake_up(k: Machine, t: Task, resume: bool) -> None:
    signal_wake_up_state(k, t, __TASK_TRACED if resume else 0)


def ptrace_trap_notify(k: Machine, t: Task) -> None:
    """A seized tracee re-traps to tell its tracer of a group stop's change."""
    task_set_jobctl_pending(t, JOBCTL_TRAP_NOTIFY)
    ptrace_signal_wake_up(k, t, bool(t.jobctl & JOBCTL_LISTENING))


def send_sig(k: Machine, sig: int, p: Task, group: bool = False) -> None:
    """A signal from the kernel itself (SIGPIPE, SIGKILL of zap_other_threads, ...)."""
    send_signal_locked(k, sig, SigInfo(sig, SI_KERNEL), p, group)


def threads_from(t: Task) -> list[Task]:
    """``t``'s thread group in while_each_thread() order: ``t`` first, then round the list from
    the thread after it (from the leader if ``t`` has left the list)."""
    threads = t.signal.thread_head
    if t not in threads:
        return list(threads)
    index = threads.index(t)
    return threads[index:] + threads[:index]


def zap_other_threads(k: Machine, p: Task) -> int:
    """SIGKILL every other thread of ``p``'s group; returns how many there were."""
    count = 0
    p.signal.group_stop_count = 0
    p.jobctl &= ~JOBCTL_PENDING_MASK
    for t in threads_from(p)[1:]:  # for_other_threads()
        t.jobctl &= ~JOBCTL_PENDING_MASK
        count += 1
        if t.exit_state:
            continue
        t.pending.signal |= S.sigmask(S.SIGKILL)
        signal_wake_up(k, t, fatal=True)
    return count


# ---- delivery ------------------------------------------------------------------------------


def dequeue_signal(t: Task) -> tuple[int, SigInfo | None]:
    """The next signal to deliver: private before shared, synchronous first, then lowest number.
    TIF_SIGPENDING is made exact afterwards."""
    found: tuple[int, SigInfo | None] = (0, None)
    for pending in (t.pending, t.signal.shared_pending):
        ready = pending.signal & ~t.blocked
        if ready:
            found = take_signal(t, pending, ready)
            break
    recalc_sigpending(t)
    return found


def take_signal(t: Task, pending: SigPending, ready: int) -> tuple[int, SigInfo | None]:
    sync = ready & SYNCHRONOUS_MASK
    bits = sync or ready
    sig = (bits & -bits).bit_length()
    info = None
    for index, queued in enumerate(pending.queue):
        if queued.signo == sig:
            info = pending.queue.pop(index)
            break
    if not any(queued.signo == sig for queued in pending.queue):
        pending.signal &= ~S.sigmask(sig)
    if sig_kernel_stop(sig):
        t.jobctl |= JOBCTL_STOP_DEQUEUED
    return sig, info


def get_signal(k: Machine, t: Task) -> int | None:
    """Act on the next pending signal. Returns the handler's sa_flags when a user handler ran,
    None when there was nothing to do (or the task stopped or died)."""
    signal = t.signal
    if t.jobctl & (JOBCTL_SIGNAL_STOP | JOBCTL_TRAP_STOPPED):
        # Back from a ptrace stop made here: the tracer's answer, then on as before.
        sig = ptrace_stop_return(t)
        if t.jobctl & JOBCTL_SIGNAL_STOP:
            t.jobctl &= ~JOBCTL_SIGNAL_STOP
            sig = ptrace_signal_resumed(k, t, sig)
            if sig:
                flags = deliver_signal(k, t, sig)
                if flags is not CONTINUE:
                    return flags
        t.jobctl &= ~JOBCTL_TRAP_STOPPED
    if signal.flags & SIGNAL_CLD_MASK:
        why = CLD_CONTINUED if signal.flags & SIGNAL_CLD_CONTINUED else CLD_STOPPED
        signal.flags &= ~SIGNAL_CLD_MASK
        do_notify_parent_cldstop(k, t, False, why)
        # A tracer of the leader hears of it too, unless it is the parent anyway.
        if ptrace_reparented(t.group_leader):
            do_notify_parent_cldstop(k, t.group_leader, True, why)
    while True:
        if signal.flags & SIGNAL_GROUP_EXIT or signal.group_exec_task is not None:
            from forklab.kernel.exit import do_group_exit

            t.pending.signal &= ~S.sigmask(S.SIGKILL)
            do_group_exit(k, t, S.SIGKILL)
            return None
        if t.jobctl & JOBCTL_STOP_PENDING and do_signal_stop(k, t, 0):
            return None
        if t.jobctl & JOBCTL_TRAP_MASK:
            if do_jobctl_trap(k, t):
                return None
            continue
        sig, info = dequeue_signal(t)
        if not sig:
            return None
        if t.ptrace and sig != S.SIGKILL:
            t.jobctl |= JOBCTL_STOP_DEQUEUED
            if ptrace_stop(k, t, sig, CLD_TRAPPED, 0, info or SigInfo(sig, SI_KERNEL)):
                t.jobctl |= JOBCTL_SIGNAL_STOP
                return None
        flags = deliver_signal(k, t, sig)
        if flags is not CONTINUE:
            return flags


CONTINUE = -1  # deliver_signal(): nothing happened, look at the next signal


def deliver_signal(k: Machine, t: Task, sig: int) -> int | None:
    """The action for ``sig``: a handler's sa_flags, None if the task stopped or died, CONTINUE
    if the signal was ignored."""
    from forklab.kernel.exit import do_group_exit

    signal = t.signal
    assert t.sighand is not None
    handler, flags, _ = t.sighand.action[sig - 1]
    if handler == S.SIG_IGN:
        return CONTINUE
    if handler != S.SIG_DFL:
        if flags & S.SA_RESETHAND:
            actions = list(t.sighand.action)
            actions[sig - 1] = DEFAULT_ACTION
            t.sighand.action = tuple(actions)
        return flags
    if sig_kernel_ignore(sig):
        return CONTINUE
    # An init ignores what it has no handler for, except what cannot be caught at all.
    if signal.flags & SIGNAL_UNKILLABLE and not sig_kernel_only(sig):
        return CONTINUE
    if sig_kernel_stop(sig):
        # Job control stops do nothing in an orphaned process group; SIGSTOP always works.
        if sig != S.SIGSTOP and is_current_pgrp_orphaned(t):
            return CONTINUE
        return None if do_signal_stop(k, t, sig) else CONTINUE
    t.flags |= PF_SIGNALED
    do_group_exit(k, t, sig)
    return None


def is_current_pgrp_orphaned(t: Task) -> bool:
    """No member of the process group has a parent in another group of the same session."""
    from forklab.kernel.exit import will_become_orphaned_pgrp

    pgrp = t.signal.pids[PIDTYPE_PGID]
    assert pgrp is not None
    return will_become_orphaned_pgrp(pgrp, None)


def is_global_init(t: Task) -> bool:
    return t.tgid == 1 and t.thread_pid is not None and t.thread_pid.level == 0


def do_signal_stop(k: Machine, t: Task, signr: int) -> bool:
    """Start a group stop (or join one): each thread stops as it next runs, the last one to
    stop tells the parent. A traced thread stops in a ptrace trap instead. True if it stopped."""
    from forklab.kernel.ptrace import PT_SEIZED

    signal = t.signal
    if not t.jobctl & JOBCTL_STOP_PENDING:
        gstop = JOBCTL_STOP_PENDING | JOBCTL_STOP_CONSUME
        if not t.jobctl & JOBCTL_STOP_DEQUEUED or signal.flags & SIGNAL_GROUP_EXIT or signal.group_exec_task:
            return False
        if not signal.flags & SIGNAL_STOP_STOPPED:
            signal.group_exit_code = signr
        signal.group_stop_count = 0
        if task_set_jobctl_pending(t, signr | gstop):
            signal.group_stop_count += 1
        for other in threads_from(t)[1:]:
            if not other.jobctl & JOBCTL_STOPPED and task_set_jobctl_pending(other, signr | gstop):
                signal.group_stop_count += 1
                if not other.ptrace & PT_SEIZED:
                    signal_wake_up(k, other, fatal=False)
                else:
                    ptrace_trap_notify(k, other)
    if t.ptrace:
        # A traced thread stops in a trap its tracer sees (do_jobctl_trap), next time round.
        task_set_jobctl_pending(t, JOBCTL_TRAP_STOP)
        return False
    notify = task_participate_group_stop(k, t)
    t.jobctl |= JOBCTL_STOPPED
    t.state = TASK_STOPPED
    deactivate(k, t)
    if notify:
        do_notify_parent_cldstop(k, t, False, CLD_STOPPED)
    return True


def task_participate_group_stop(k: Machine, t: Task) -> bool:
    """This thread's part of the group stop is done; True if it completed a fresh stop."""
    signal = t.signal
    consume = t.jobctl & JOBCTL_STOP_CONSUME
    task_clear_jobctl_pending(k, t, JOBCTL_STOP_PENDING)
    if not consume:
        return False
    if signal.group_stop_count:
        signal.group_stop_count -= 1
    if not signal.group_stop_count and not signal.flags & SIGNAL_STOP_STOPPED:
        signal_set_stop_flags(signal, SIGNAL_STOP_STOPPED)
        return True
    return False


def deactivate(k: Machine, t: Task) -> None:
    deactivate_task(k, t)


def do_notify_parent_cldstop(k: Machine, tsk: Task, for_ptracer: bool, why: int) -> None:
    """SIGCHLD for a stop, a continue or a trap: to the tracer, or to the group's real parent
    (unless it asked for SA_NOCLDSTOP)."""
    if for_ptracer:
        parent = tsk.parent
    else:
        tsk = tsk.group_leader
        parent = tsk.real_parent
    if parent is None:
        return
    if why == CLD_CONTINUED:
        status = S.SIGCONT
    elif why == CLD_STOPPED:
        status = tsk.signal.group_exit_code & 0x7F
    else:
        status = tsk.exit_code & 0x7F
    pid = pid_nr_ns(tsk.thread_pid, task_active_pid_ns(parent))
    info = SigInfo(S.SIGCHLD, why, pid, from_kuid_munged(parent.cred.user_ns, tsk.cred.uid), status)
    assert parent.sighand is not None
    handler, flags, _ = parent.sighand.action[S.SIGCHLD - 1]
    if handler != S.SIG_IGN and not flags & S.SA_NOCLDSTOP:
        send_signal_locked(k, S.SIGCHLD, info, parent, group=True)
    wake_up_parent(k, tsk, parent)


# ---- ptrace stops (kernel/signal.c) ------------------------------------------------------------


def ptrace_reparented(t: Task) -> bool:
    """Traced by someone other than its real parent's group."""
    return t.parent is not None and t.real_parent is not None and t.parent.signal is not t.real_parent.signal


def ptrace_stop(k: Machine, t: Task, exit_code: int, why: int, message: int, info: SigInfo | None) -> bool:
    """Stop in TASK_TRACED and tell the tracer; False (no stop) if untraced or SIGKILL is pending.

    The caller arranges what happens when the tracer lets the task go; ptrace_stop_return()
    then gives the tracer's answer (the signal it left in exit_code).
    """
    if not t.ptrace or fatal_signal_pending(t):
        return False
    t.state = TASK_TRACED
    t.jobctl |= JOBCTL_TRACED
    t.ptrace_message = message
    t.last_siginfo = info
    t.exit_code = exit_code
    gstop_done = why == CLD_STOPPED and bool(t.jobctl & JOBCTL_STOP_PENDING) and task_participate_group_stop(k, t)
    task_clear_jobctl_pending(k, t, JOBCTL_TRAP_STOP)
    if info is not None and info.code >> 8 == PTRACE_EVENT_STOP:  # a STOP trap clears NOTIFY
        task_clear_jobctl_pending(k, t, JOBCTL_TRAP_NOTIFY)
    task_clear_jobctl_trapping(k, t)
    deactivate(k, t)
    if t.ptrace:
        do_notify_parent_cldstop(k, t, True, why)
    if gstop_done and (not t.ptrace or ptrace_reparented(t)):
        do_notify_parent_cldstop(k, t, False, why)
    return True


def ptrace_stop_return(t: Task) -> int:
    """The task was let go: the signal the tracer left, and the stop's records cleared."""
    exit_code = t.exit_code
    t.last_siginfo = None
    t.ptrace_message = 0
    t.exit_code = 0
    t.jobctl &= ~JOBCTL_LISTENING
    recalc_sigpending_tsk(t)  # signals queued while it was stopped passed it by
    return exit_code


def ptrace_do_notify(k: Machine, t: Task, signr: int, exit_code: int, why: int, message: int) -> bool:
    info = SigInfo(signr, exit_code, pid_nr_ns(t.thread_pid, task_active_pid_ns(t)),
                   from_kuid_munged(t.cred.user_ns, t.cred.uid))  # fmt: skip
    return ptrace_stop(k, t, exit_code, why, message, info)


def do_jobctl_trap(k: Machine, t: Task) -> bool:
    """A traced thread's group stop, or a seized tracee's PTRACE_EVENT_STOP; True if it stopped."""
    from forklab.kernel.ptrace import PT_SEIZED

    signal = t.signal
    signr = t.jobctl & JOBCTL_STOP_SIGMASK
    if t.ptrace & PT_SEIZED:
        if not signal.group_stop_count and not signal.flags & SIGNAL_STOP_STOPPED:
            signr = S.SIGTRAP
        stopped = ptrace_do_notify(k, t, signr, signr | (PTRACE_EVENT_STOP << 8), CLD_STOPPED, 0)
    else:
        stopped = ptrace_stop(k, t, signr, CLD_STOPPED, 0, None)
    if stopped:
        t.jobctl |= JOBCTL_TRAP_STOPPED
    else:
        t.jobctl &= ~JOBCTL_TRAP_MASK
    return stopped


def ptrace_signal_resumed(k: Machine, t: Task, signr: int) -> int:
    """After a signal-delivery-stop: the signal the tracer chose (0 for none) is delivered now,
    or queued again if it is blocked or the task is being killed."""
    if not signr:
        return 0
    tracer = t.parent
    assert tracer is not None
    info = SigInfo(signr, SI_USER, pid_nr_ns(tracer.thread_pid, task_active_pid_ns(t)),
                   from_kuid_munged(t.cred.user_ns, tracer.cred.uid))  # fmt: skip
    if t.blocked & S.sigmask(signr) or fatal_signal_pending(t):
        send_signal_locked(k, signr, info, t, group=False)
        return 0
    return signr


def wake_up_state(k: Machine, t: Task, state: int) -> None:
    try_to_wake_up(k, t, state)


# ---- telling the parent --------------------------------------------------------------------


@traced
def do_notify_parent(k: Machine, tsk: Task, sig: int) -> bool:
    """Send the exit signal for ``tsk`` to its parent; returns True if the child reaps itself."""
    parent = tsk.parent
    assert parent is not None
    # A parent that has exec'd since the fork gets SIGCHLD, whatever was asked for.
    if sig != S.SIGCHLD and tsk.parent_exec_id != parent.self_exec_id:
        sig = S.SIGCHLD
    status = tsk.exit_code & 0x7F
    if tsk.exit_code & 0x80:
        code, status = CLD_DUMPED, status
    elif status:
        code = CLD_KILLED
    else:
        code, status = CLD_EXITED, tsk.exit_code >> 8
    pid = pid_nr_ns(tsk.thread_pid, task_active_pid_ns(parent))
    info = SigInfo(sig, code, pid, from_kuid_munged(parent.cred.user_ns, tsk.cred.uid), status)
    autoreap = False
    assert parent.sighand is not None
    psig_handler, psig_flags, _ = parent.sighand.action[S.SIGCHLD - 1]
    if not tsk.ptrace and sig == S.SIGCHLD and (psig_handler == S.SIG_IGN or psig_flags & S.SA_NOCLDWAIT):
        autoreap = True
        if psig_handler == S.SIG_IGN:
            sig = 0
    if S.valid_signal(sig) and sig:
        send_signal_locked(k, sig, info, parent, group=True)
    wake_up_parent(k, tsk, parent)
    return autoreap


def wake_up_parent(k: Machine, p: Task, parent: Task) -> None:
    """__wake_up_parent(): wake whoever waits in wait4/waitid for the parent's children."""
    wake_up(k, parent.signal.wait_chldexit, key=p)


# ---- kill(2), tgkill(2) ------------------------------------------------------------------------


def kill_ok_by_cred(current: Task, t: Task) -> bool:
    """The sender's uid or euid matches the target's uid or saved uid, or it has CAP_KILL over it.

    The ids compared are kernel ids: a task in a new user namespace without maps (uid 65534
    inside) still has its kuid, and may signal its siblings.
    """
    cred, tcred = current.cred, t.cred
    if cred.euid in (tcred.suid, tcred.uid) or cred.uid in (tcred.suid, tcred.uid):
        return True
    return ns_capable(current, tcred.user_ns, CAP_KILL)


def check_kill_permission(k: Machine, current: Task, sig: int, t: Task) -> None:
    if not S.valid_signal(sig):
        raise KernelError(E.EINVAL, f"kill: {sig} is not a signal")
    # Within a thread group, and SIGCONT within a session, no permission is needed.
    if t.signal is current.signal or kill_ok_by_cred(current, t):
        return
    if sig == S.SIGCONT and t.signal.pids[3] is current.signal.pids[3]:
        return
    raise KernelError(E.EPERM, "kill: no permission to signal that task")


def user_siginfo(current: Task, sig: int, code: int, t: Task) -> SigInfo:
    """The siginfo of a signal ``current`` sends ``t``: its process id and uid as ``t`` sees them."""
    return SigInfo(sig, code, pid_nr_ns(current.group_leader.thread_pid, task_active_pid_ns(t)),
                   from_kuid_munged(t.cred.user_ns, current.cred.uid))  # fmt: skip


def group_send_sig_info(k: Machine, current: Task, sig: int, t: Task, group: bool = True) -> None:
    """A signal from a user (kill, pidfd_send_signal) to ``t``'s process, or to ``t`` alone."""
    check_kill_permission(k, current, sig, t)
    if sig:
        send_signal_locked(k, sig, user_siginfo(current, sig, SI_USER if group else SI_TKILL, t), t, group=group)


def kill_pgrp_info(k: Machine, current: Task, sig: int, pgrp: Pid | None) -> None:
    """Every process of the group; fails only if none could be signalled (with the last error)."""
    members = pid_tasks(pgrp, PIDTYPE_PGID) if pgrp is not None else []
    if not members:
        raise KernelError(E.ESRCH, "kill: no such process group")
    errors = []
    for t in members:
        try:
            group_send_sig_info(k, current, sig, t)
        except KernelError as err:
            errors.append(err)
    if len(errors) == len(members):
        raise errors[0]


def kill_something_info(k: Machine, current: Task, sig: int, pid: int) -> None:
    """kill(pid, sig): a process (> 0), the caller's group (0), everyone it may (-1), a group (< -1)."""
    ns = task_active_pid_ns(current)
    if pid > 0:
        # Any thread's id names its whole process (kill_pid_info looks up PIDTYPE_PID).
        t = pid_task(find_pid_ns(pid, ns), PIDTYPE_PID)
        if t is None:
            raise KernelError(E.ESRCH, f"kill: no process {pid}")
        group_send_sig_info(k, current, sig, t)
        return
    if pid == -(1 << 31):
        raise KernelError(E.ESRCH, "kill: pid INT_MIN")
    if pid != -1:
        kill_pgrp_info(k, current, sig, current.signal.pids[PIDTYPE_PGID] if pid == 0 else find_pid_ns(-pid, ns))
        return
    # -1: every process the caller may signal in its namespace, but init and itself.
    sent = 0
    last: KernelError | None = None
    for t in all_tasks(k):
        if not t.pid or t.exit_signal < 0 or t.signal is current.signal:
            continue
        if task_active_pid_ns(t) is not ns and not _in_descendant_ns(t, ns):
            continue
        if pid_nr_ns(t.thread_pid, ns) <= 1:
            continue
        try:
            group_send_sig_info(k, current, sig, t)
            sent += 1
        except KernelError as err:
            last = err
    if not sent:
        raise last or KernelError(E.ESRCH, "kill: no process to signal")


def _in_descendant_ns(t: Task, ns: object) -> bool:
    pid = t.thread_pid
    return pid is not None and any(owner is ns for _, owner in pid.numbers)


def do_tkill(k: Machine, current: Task, tgid: int, pid: int, sig: int) -> None:
    """tgkill(tgid, tid, sig): one thread, which must belong to ``tgid`` (unless tgid <= 0, tkill)."""
    if pid <= 0 or tgid == 0:
        raise KernelError(E.EINVAL, "tgkill: the thread id must be positive")
    ns = task_active_pid_ns(current)
    t = pid_task(find_pid_ns(pid, ns), PIDTYPE_PID)
    if t is None or (tgid > 0 and pid_nr_ns(t.group_leader.thread_pid, ns) != tgid):
        raise KernelError(E.ESRCH, f"tgkill: no thread {pid} in process {tgid}")
    check_kill_permission(k, current, sig, t)
    if sig:
        info = SigInfo(sig, SI_TKILL, pid_nr_ns(current.group_leader.thread_pid, ns),
                       from_kuid_munged(t.cred.user_ns, current.cred.uid))  # fmt: skip
        send_signal_locked(k, sig, info, t, group=False)
