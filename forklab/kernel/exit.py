"""kernel/exit.c: a task's death, the parent's notification, reaping, and wait.

``do_exit`` releases what the task holds in the kernel's order, then ``exit_notify``
hands its children to a new reaper and either leaves it a zombie for its parent or
reaps it at once. ``kernel_wait4`` finds a child that matches and reaps it, or sleeps
until one changes state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from forklab.kernel.cgroup.cgroup import cgroup_exit, cgroup_release
from forklab.kernel.cred import uncharge_nproc
from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.fork import put_task_struct_rcu_user
from forklab.kernel.fs.file import exit_files
from forklab.kernel.fs.fs_struct import exit_fs
from forklab.kernel.ftrace import traced
from forklab.kernel.ipc import exit_sem
from forklab.kernel.mm.mm import SUID_DUMP_USER, complete_vfork_done, mm_release, mmput
from forklab.kernel.nsproxy import exit_nsproxy_namespaces
from forklab.kernel.pid import (
    PIDTYPE_MAX,
    PIDTYPE_PGID,
    PIDTYPE_PID,
    PIDTYPE_SID,
    PIDTYPE_TGID,
    Pid,
    detach_pid,
    find_pid_ns,
    free_pid,
    get_pid,
    pid_has_task,
    pid_nr,
    pid_nr_ns,
    pid_task,
    pid_tasks,
    put_pid,
)
from forklab.kernel.pid_namespace import PIDNS_ADDING, task_active_pid_ns
from forklab.kernel.pidfd import pidfd_get_pid
from forklab.kernel.ptrace import PTRACE_EVENT_EXIT, exit_ptrace, ptrace_event, ptrace_unlink
from forklab.kernel.sched.core import deactivate_task, dl_policy, wake_up_process
from forklab.kernel.sched.deadline import task_dead_dl
from forklab.kernel.signal import (
    ALL_SIGNALS,
    JOBCTL_LISTENING,
    JOBCTL_TRACED,
    SIGNAL_GROUP_EXIT,
    SIGNAL_STOP_CONTINUED,
    SIGNAL_STOP_STOPPED,
    cleanup_sighand,
    do_notify_parent,
    exit_signals,
    flush_sigqueue_mask,
    group_send_sig_info,
    ptrace_reparented,
    send_sig,
    task_sigpending,
    thread_group_empty,
    threads_from,
    zap_other_threads,
)
from forklab.kernel.task import (
    EXIT_DEAD,
    EXIT_TRACE,
    EXIT_ZOMBIE,
    PF_EXITING,
    TASK_DEAD,
    TASK_INTERRUPTIBLE,
    Task,
)
from forklab.kernel.trace import trace_sched_process_exit, trace_sched_process_wait
from forklab.kernel.user_namespace import from_kuid_munged
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi.signal import SIG_IGN, SIGCHLD, SIGCONT, SIGHUP, SIGKILL
from forklab.uapi.wait import (
    __WALL,
    __WCLONE,
    __WNOTHREAD,
    CLD_CONTINUED,
    CLD_DUMPED,
    CLD_EXITED,
    CLD_KILLED,
    CLD_STOPPED,
    CLD_TRAPPED,
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOWAIT,
    WSTOPPED,
    WUNTRACED,
    WaitidInfo,
)

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine

INT_MIN = -(1 << 31)
T = TypeVar("T")


class KernelPanic(Exception):
    """The model's kernel panicked (global init died): nothing runs after this."""


# ---- do_exit ---------------------------------------------------------------------------------


@traced
def do_exit(k: Machine, tsk: Task, code: int) -> None:
    """The task dies with ``code`` (the wait status it leaves, e.g. 0x300 for exit(3)).

    A tracer that asked for PTRACE_O_TRACEEXIT sees the task stop first, still whole.
    """
    synchronize_group_exit(tsk, code)
    ptrace_event(k, tsk, PTRACE_EVENT_EXIT, code, lambda: exit_after_event(k, tsk, code))


def exit_after_event(k: Machine, tsk: Task, code: int) -> None:
    exit_signals(k, tsk)
    # Nothing will dequeue them now: the host (6.18.44) shows a zombie's SigPnd empty, its
    # process's ShdPnd kept.
    flush_sigqueue_mask(tsk.pending, ALL_SIGNALS)
    signal = tsk.signal
    signal.live -= 1
    group_dead = signal.live == 0
    if group_dead and tsk.tgid == 1 and task_active_pid_ns(tsk) is k.init_pid_ns:
        k.panicked = f"Attempted to kill init! exitcode={signal.group_exit_code or code:#010x}"
        raise KernelPanic("Kernel panic - not syncing: " + k.panicked)
    tsk.exit_code = code
    trace_sched_process_exit(k, tsk, group_dead)
    exit_mm(k, tsk)
    exit_sem(k, tsk)
    exit_files(k, tsk)
    exit_fs(k, tsk)
    exit_nsproxy_namespaces(k, tsk)
    cgroup_exit(k, tsk)
    exit_notify(k, tsk, group_dead)


def synchronize_group_exit(tsk: Task, code: int) -> None:
    """The last thread to leave (of its own accord) sets the group's exit code."""
    signal = tsk.signal
    signal.quick_threads -= 1
    if signal.quick_threads == 0 and not signal.flags & SIGNAL_GROUP_EXIT:
        signal.flags = SIGNAL_GROUP_EXIT
        signal.group_exit_code = code
        signal.group_stop_count = 0


@traced
def do_group_exit(k: Machine, tsk: Task, exit_code: int) -> None:
    """exit_group(2) and fatal signals: the first to get here sets the code and kills the rest."""
    signal = tsk.signal
    if signal.flags & SIGNAL_GROUP_EXIT:
        exit_code = signal.group_exit_code
    elif signal.group_exec_task is not None:
        exit_code = 0
    else:
        signal.group_exit_code = exit_code
        signal.flags = SIGNAL_GROUP_EXIT
        zap_other_threads(k, tsk)
    do_exit(k, tsk, exit_code)


@traced
def exit_mm(k: Machine, tsk: Task) -> None:
    mm = tsk.mm
    if mm is None:
        if tsk.vfork_done is not None:
            complete_vfork_done(k, tsk)
        return
    mm_release(k, tsk, mm)
    if k.has(Behaviour.PTRACE_EXIT_DUMPABLE):
        tsk.user_dumpable = mm.dumpable == SUID_DUMP_USER
    tsk.mm = None
    if mm.owner is tsk:
        mm.owner = None
    mmput(k, mm)


# ---- exit_notify -----------------------------------------------------------------------------


@traced
def exit_notify(k: Machine, tsk: Task, group_dead: bool) -> None:
    """Reparent the children, become a zombie, tell the parent (or reap at once)."""
    dead: list[Task] = []
    if tsk.ptraced:
        exit_ptrace(k, tsk, dead)
    reaper = find_child_reaper(k, tsk, dead)
    if reaper is None:
        # A pid namespace's init: everything else in the namespace must die first.
        zap_pid_ns_processes(k, tsk, lambda: finish_exit_notify(k, tsk, group_dead, tsk, dead))
        return
    finish_exit_notify(k, tsk, group_dead, reaper, dead)


def finish_exit_notify(k: Machine, tsk: Task, group_dead: bool, reaper: Task, dead: list[Task]) -> None:
    forget_original_parent(k, tsk, reaper, dead)
    if group_dead:
        kill_orphaned_pgrp(k, tsk.group_leader, None)
    tsk.exit_state = EXIT_ZOMBIE
    if tsk.ptrace:
        # The tracer hears of every traced thread's death; with the exit signal only if it is
        # the real parent and the whole group is gone.
        plain = tsk.exit_signal >= 0 and thread_group_empty(tsk) and not ptrace_reparented(tsk)
        autoreap = do_notify_parent(k, tsk, tsk.exit_signal if plain else SIGCHLD)
    elif tsk.exit_signal >= 0:  # thread_group_leader
        autoreap = thread_group_empty(tsk) and do_notify_parent(k, tsk, tsk.exit_signal)
    else:
        autoreap = True
    if autoreap:
        tsk.exit_state = EXIT_DEAD
        dead.append(tsk)
    signal = tsk.signal
    if signal.notify_count < 0 and signal.group_exec_task is not None:
        wake_up_process(k, signal.group_exec_task)
    for p in dead:
        release_task(k, p)
    do_task_dead(k, tsk)


@traced
def do_task_dead(k: Machine, tsk: Task) -> None:
    """The task's last schedule(): off the runqueue for good; the scheduler drops its reference."""
    tsk.state = TASK_DEAD
    deactivate_task(k, tsk)
    if dl_policy(tsk.policy):
        task_dead_dl(k, tsk)
    tsk.pending_call = None
    put_task_struct_rcu_user(k, tsk)


def find_alive_thread(p: Task) -> Task | None:
    for t in p.signal.thread_head:
        if not t.flags & PF_EXITING:
            return t
    return None


def find_child_reaper(k: Machine, father: Task, dead: list[Task]) -> Task | None:
    """The namespace's reaper; if ``father`` is it, another live thread takes over, else None
    (and the tasks in ``dead`` are released at once)."""
    pid_ns = task_active_pid_ns(father)
    reaper = pid_ns.child_reaper
    if reaper is not father:
        assert reaper is not None
        return reaper
    reaper = find_alive_thread(father)
    if reaper is not None:
        pid_ns.child_reaper = reaper
        return reaper
    # The namespace dies with it: its tracees released so far go now, before the wait for the rest.
    for p in dead:
        release_task(k, p)
    dead.clear()
    return None


def find_new_reaper(k: Machine, father: Task, child_reaper: Task) -> Task:
    """A live thread of the same group, else the nearest subreaper ancestor in the same pid
    namespace, else the namespace's init."""
    thread = find_alive_thread(father)
    if thread is not None:
        return thread
    if father.signal.has_child_subreaper:
        assert father.thread_pid is not None
        level = father.thread_pid.level
        reaper = father.real_parent
        while reaper is not None and reaper.thread_pid is not None and reaper.thread_pid.level == level:
            if reaper is k.init_task:
                break
            if reaper.signal.is_child_subreaper:
                thread = find_alive_thread(reaper)
                if thread is not None:
                    return thread
            reaper = reaper.real_parent
    return child_reaper


@traced
def forget_original_parent(k: Machine, father: Task, child_reaper: Task, dead: list[Task]) -> None:
    if not father.children:
        return
    reaper = find_new_reaper(k, father, child_reaper)
    for p in list(father.children):
        for t in p.signal.thread_head:
            t.real_parent = reaper
            if not t.ptrace:
                t.parent = reaper
            if t.pdeath_signal:
                # Sent as from the dying parent (SEND_SIG_NOINFO): only if it may signal the child.
                with contextlib.suppress(KernelError):
                    group_send_sig_info(k, father, t.pdeath_signal, t)
        if reaper.signal is not father.signal:
            reparent_leader(k, father, p, dead)
        reaper.children[p] = None
    father.children.clear()


def reparent_leader(k: Machine, father: Task, p: Task, dead: list[Task]) -> None:
    """A child that changes process becomes an ordinary SIGCHLD child; a zombie is re-announced."""
    if p.exit_state == EXIT_DEAD:
        return
    p.exit_signal = SIGCHLD
    zombie = not p.ptrace and p.exit_state == EXIT_ZOMBIE and thread_group_empty(p)
    if zombie and do_notify_parent(k, p, p.exit_signal):
        p.exit_state = EXIT_DEAD
        dead.append(p)
    kill_orphaned_pgrp(k, p, father)


def kill_orphaned_pgrp(k: Machine, tsk: Task, parent: Task | None) -> None:
    """POSIX 3.2.2.2: a process group that this exit (``parent`` None) or this reparenting (from
    ``parent``) leaves with no parent in another group of its session, and that has a stopped
    job, gets SIGHUP and then SIGCONT."""
    pgrp = tsk.signal.pids[PIDTYPE_PGID]
    ignored: Task | None = tsk
    if parent is None:
        parent = tsk.real_parent
    else:
        ignored = None  # the child has its new parent already
    if pgrp is None or parent is None:
        return
    if (
        parent.signal.pids[PIDTYPE_PGID] is not pgrp
        and parent.signal.pids[PIDTYPE_SID] is tsk.signal.pids[PIDTYPE_SID]
        and will_become_orphaned_pgrp(pgrp, ignored)
        and any(p.signal.flags & SIGNAL_STOP_STOPPED for p in pid_tasks(pgrp, PIDTYPE_PGID))
    ):
        for sig in (SIGHUP, SIGCONT):
            for p in pid_tasks(pgrp, PIDTYPE_PGID):
                send_sig(k, sig, p, group=True)


def will_become_orphaned_pgrp(pgrp: Pid, ignored: Task | None) -> bool:
    """No member of the group (but ``ignored``) has a parent in another group of the same session."""
    from forklab.kernel.signal import is_global_init

    for p in pid_tasks(pgrp, PIDTYPE_PGID):
        parent = p.real_parent
        if p is ignored or (p.exit_state and thread_group_empty(p)) or parent is None or is_global_init(parent):
            continue
        if (
            parent.signal.pids[PIDTYPE_PGID] is not pgrp
            and parent.signal.pids[PIDTYPE_SID] is p.signal.pids[PIDTYPE_SID]
        ):
            return False
    return True


def zap_pid_ns_processes(k: Machine, me: Task, then: Callable[[], None]) -> None:
    """A pid namespace's init is exiting: no more forks into it, the rest killed and reaped.

    The init sleeps until every other task of the namespace is gone; ``then`` finishes its exit.
    """
    pid_ns = task_active_pid_ns(me)
    init_pids = 1 if me.exit_signal >= 0 else 2
    pid_ns.pid_allocated &= ~PIDNS_ADDING
    sighand = me.sighand
    assert sighand is not None
    actions = list(sighand.action)
    actions[SIGCHLD - 1] = (SIG_IGN, 0, 0)
    sighand.action = tuple(actions)
    for nr in sorted(pid_ns.idr):
        task = pid_task(pid_ns.idr[nr], PIDTYPE_PID) if nr >= 2 else None
        if task is not None and not task.pending.signal & (1 << (SIGKILL - 1)):
            send_sig(k, SIGKILL, task, group=True)
    # kernel_wait4(-1, __WALL) until ECHILD: each call is one wait (and one trace line), however
    # often it sleeps before a child can be reaped.

    def reap_then_wait(fresh: bool = True) -> None:
        while True:
            try:
                pid, _ = kernel_wait4(k, me, -1, __WALL | WNOHANG, trace=fresh)
            except KernelError:
                break  # ECHILD: no children left
            if pid == 0:
                raise WouldBlock(me.signal.wait_chldexit, lambda: reap_then_wait(False), TASK_INTERRUPTIBLE)
            fresh = True
        if pid_ns.pid_allocated != init_pids:
            # free_pid wakes the reaper when only its own pids are left.
            raise WouldBlock(None, lambda: reap_then_wait(False), TASK_INTERRUPTIBLE)
        then()

    reap_then_wait()


# ---- release_task ----------------------------------------------------------------------------


@traced
def release_task(k: Machine, p: Task) -> None:
    """The task is gone for good: pids freed, counts dropped, the leader maybe released too."""
    while True:
        uncharge_nproc(k, p)
        cgroup_release(k, p)
        if p.ptrace:
            ptrace_unlink(k, p)
        freed: list[Pid] = []
        exit_signal_locked(k, p, freed)
        zap_leader = False
        leader = p.group_leader
        if leader is not p and thread_group_empty(leader) and leader.exit_state == EXIT_ZOMBIE:
            zap_leader = do_notify_parent(k, leader, leader.exit_signal)
            if zap_leader:
                leader.exit_state = EXIT_DEAD
        for pid in freed:
            free_pid(k, pid)
        p.pending.queue.clear()
        p.pending.signal = 0
        put_task_struct_rcu_user(k, p)
        if not zap_leader:
            return
        p = leader


def exit_signal_locked(k: Machine, tsk: Task, freed: list[Pid]) -> None:
    """__exit_signal(): leave the thread group and every pid list; the sighand reference goes."""
    signal = tsk.signal
    group_dead = tsk.exit_signal >= 0
    if not group_dead:
        if signal.notify_count > 0:
            signal.notify_count -= 1
            if signal.notify_count == 0 and signal.group_exec_task is not None:
                wake_up_process(k, signal.group_exec_task)
        if signal.curr_target is tsk:
            signal.curr_target = None
    signal.nr_threads -= 1
    k.nr_threads -= 1
    detach_pid(tsk, PIDTYPE_PID, freed)
    if group_dead:
        detach_pid(tsk, PIDTYPE_TGID, freed)
        detach_pid(tsk, PIDTYPE_PGID, freed)
        detach_pid(tsk, PIDTYPE_SID, freed)
        del k.tasks[tsk]
        parent = tsk.real_parent
        if parent is not None:
            parent.children.pop(tsk, None)
        k.process_counts[tsk.cpu] -= 1
        signal.shared_pending.queue.clear()
        signal.shared_pending.signal = 0
    signal.thread_head.remove(tsk)
    sighand = tsk.sighand
    tsk.sighand = None
    if sighand is not None:
        cleanup_sighand(k, sighand)


# ---- wait ------------------------------------------------------------------------------------


class WaitOpts:
    """struct wait_opts; ``wo_info`` is waitid's answer (si_code, si_status, si_pid, si_uid)."""

    __slots__ = ("notask_error", "wo_flags", "wo_info", "wo_pid", "wo_stat", "wo_type")

    def __init__(self, wo_type: int, wo_pid: Pid | None, flags: int) -> None:
        self.wo_type = wo_type
        self.wo_pid = wo_pid
        self.wo_flags = flags
        self.wo_stat = 0
        self.wo_info: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.notask_error = -E.ECHILD


@traced
def kernel_wait4(k: Machine, current: Task, upid: int, options: int, trace: bool = True) -> tuple[int, int]:
    """wait4(): (pid, status) of a child that changed state; (0, 0) with WNOHANG if none has yet."""
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL):
        raise KernelError(E.EINVAL, f"wait4: unknown options {options:#x}")
    if upid == INT_MIN:
        raise KernelError(E.ESRCH, "wait4: pid INT_MIN names no process group")
    ns = task_active_pid_ns(current)
    pid: Pid | None = None
    if upid == -1:
        kind = PIDTYPE_MAX
    elif upid < 0:
        kind = PIDTYPE_PGID
        pid = find_pid_ns(-upid, ns)
    elif upid == 0:
        kind = PIDTYPE_PGID
        pid = current.signal.pids[PIDTYPE_PGID]
    else:
        kind = PIDTYPE_PID
        pid = find_pid_ns(upid, ns)
    # The wait holds a reference on the pid until it is over, however long it sleeps.
    if pid is not None:
        get_pid(pid)
    wo = WaitOpts(kind, pid, options | WEXITED)
    return do_wait(k, current, wo, lambda ret: (ret, wo.wo_stat), trace)


@traced
def kernel_waitid(k: Machine, current: Task, which: int, upid: int, options: int) -> WaitidInfo:
    """waitid(): the siginfo of a child that changed state (all zero under WNOHANG if none has)."""
    if options & ~(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL):
        raise KernelError(E.EINVAL, f"waitid: unknown options {options:#x}")
    if not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise KernelError(E.EINVAL, "waitid: none of WEXITED, WSTOPPED, WCONTINUED")
    nonblock = False
    pid: Pid | None = None
    if which == P_ALL:
        kind = PIDTYPE_MAX
    elif which == P_PID:
        kind = PIDTYPE_PID
        if upid <= 0:
            raise KernelError(E.EINVAL, "waitid(P_PID): the pid must be positive")
        pid = find_pid_ns(upid, task_active_pid_ns(current))
    elif which == P_PGID:
        kind = PIDTYPE_PGID
        if upid < 0:
            raise KernelError(E.EINVAL, "waitid(P_PGID): the group must not be negative")
        ns = task_active_pid_ns(current)
        pid = find_pid_ns(upid, ns) if upid else current.signal.pids[PIDTYPE_PGID]
    elif which == P_PIDFD:
        kind = PIDTYPE_PID
        if upid < 0:
            raise KernelError(E.EINVAL, "waitid(P_PIDFD): the fd must not be negative")
        pid, nonblock = pidfd_get_pid(current, upid)
    else:
        raise KernelError(E.EINVAL, f"waitid: unknown id type {which}")
    if pid is not None:
        get_pid(pid)
    wo = WaitOpts(kind, pid, options | (WNOHANG if nonblock else 0))

    def answer(ret: int) -> WaitidInfo:
        if not ret:
            if nonblock and not options & WNOHANG:
                raise KernelError(E.EAGAIN, "waitid(P_PIDFD): the pidfd is non-blocking and no child is ready")
            return WaitidInfo(0, 0, 0, 0, 0)
        code, status, nr, uid = wo.wo_info
        return WaitidInfo(nr, uid, SIGCHLD, status, code)

    return do_wait(k, current, wo, answer)


@traced
def do_wait(k: Machine, current: Task, wo: WaitOpts, answer: Callable[[int], T], trace: bool = True) -> T:
    """Wait until a child matches (sleeping if need be); ``answer`` turns the pid found (0 under
    WNOHANG) into the call's result."""
    if trace:
        trace_sched_process_wait(k, current, pid_nr(wo.wo_pid))

    def attempt() -> T:
        ret = __do_wait(k, current, wo)
        if ret == -E.ERESTARTSYS and not task_sigpending(current):
            raise WouldBlock(current.signal.wait_chldexit, attempt, TASK_INTERRUPTIBLE,
                             wake_if=lambda p: child_should_wake(current, wo, p))  # fmt: skip
        put_pid(k, wo.wo_pid)
        if ret == -E.ERESTARTSYS:
            raise KernelError(E.ERESTARTSYS, "do_wait: a signal arrived while waiting")
        if ret == -E.ECHILD:
            raise KernelError(E.ECHILD, "do_wait: no child matches the pid and options (ECHILD)")
        if ret < 0:
            raise KernelError(-ret, "do_wait failed")
        return answer(ret)

    return attempt()


@traced
def __do_wait(k: Machine, current: Task, wo: WaitOpts) -> int:
    wo.notask_error = -E.ECHILD
    if wo.wo_type < PIDTYPE_MAX and (wo.wo_pid is None or not pid_has_task(wo.wo_pid, wo.wo_type)):
        return notask(wo)
    if wo.wo_type == PIDTYPE_PID:
        ret = do_wait_pid(k, current, wo)
        if ret:
            return ret
    else:
        for tsk in [current] if wo.wo_flags & __WNOTHREAD else threads_from(current):
            # Its children first, then the tasks it traces.
            for ptrace, tasks in ((False, tsk.children), (True, tsk.ptraced)):
                for p in list(tasks):
                    ret = wait_consider_task(k, current, wo, ptrace, p)
                    if ret:
                        return ret
    return notask(wo)


def notask(wo: WaitOpts) -> int:
    ret = wo.notask_error
    if not ret and not wo.wo_flags & WNOHANG:
        return -E.ERESTARTSYS
    return ret


def do_wait_pid(k: Machine, current: Task, wo: WaitOpts) -> int:
    target = pid_task(wo.wo_pid, PIDTYPE_TGID)
    if target is not None and is_effectively_child(current, wo, False, target):
        ret = wait_consider_task(k, current, wo, False, target)
        if ret:
            return ret
    # A traced thread answers to its tracer by its own tid.
    target = pid_task(wo.wo_pid, PIDTYPE_PID)
    if target is not None and target.ptrace and is_effectively_child(current, wo, True, target):
        ret = wait_consider_task(k, current, wo, True, target)
        if ret:
            return ret
    return 0


def is_effectively_child(current: Task, wo: WaitOpts, ptrace: bool, target: Task) -> bool:
    parent = target.parent if ptrace else target.real_parent
    if parent is current:
        return True
    return not wo.wo_flags & __WNOTHREAD and parent is not None and parent.signal is current.signal


def task_pid_type(p: Task, kind: int) -> Pid | None:
    return p.thread_pid if kind == PIDTYPE_PID else p.signal.pids[kind]


def eligible_pid(wo: WaitOpts, p: Task) -> bool:
    return wo.wo_type == PIDTYPE_MAX or task_pid_type(p, wo.wo_type) is wo.wo_pid


def child_should_wake(current: Task, wo: WaitOpts, p: Task) -> bool:
    """child_wait_callback(): a waiter wakes only for a child it waits for (the pid or group it
    named; under __WNOTHREAD, only its own)."""
    return eligible_pid(wo, p) and (not wo.wo_flags & __WNOTHREAD or p.parent is current)


def eligible_child(wo: WaitOpts, ptrace: bool, p: Task) -> bool:
    if not eligible_pid(wo, p):
        return False
    if ptrace or wo.wo_flags & __WALL:
        return True
    # A "clone child" reports with a signal other than SIGCHLD; only __WCLONE waits for those.
    return (p.exit_signal != SIGCHLD) == bool(wo.wo_flags & __WCLONE)


@traced
def wait_consider_task(k: Machine, current: Task, wo: WaitOpts, ptrace: bool, p: Task) -> int:
    exit_state = p.exit_state
    if exit_state == EXIT_DEAD:
        return 0
    if not eligible_child(wo, ptrace, p):
        return 0
    if exit_state == EXIT_TRACE:
        # The tracer is reaping it; the real parent hears of it afterwards.
        if not ptrace:
            wo.notask_error = 0
        return 0
    if not ptrace and p.ptrace and not ptrace_reparented(p):
        ptrace = True  # traced by its own parent: reaped as a tracee
    if exit_state == EXIT_ZOMBIE:
        # A leader with live threads is not reaped yet; a traced zombie only by its tracer.
        if not delay_group_leader(p) and (ptrace or not p.ptrace):
            return wait_task_zombie(k, current, wo, p)
        if not ptrace or wo.wo_flags & (WCONTINUED | WEXITED):
            wo.notask_error = 0
    else:
        wo.notask_error = 0
    return wait_task_stopped(k, current, wo, ptrace, p) or wait_task_continued(k, current, wo, p)


def delay_group_leader(p: Task) -> bool:
    return p.exit_signal >= 0 and not thread_group_empty(p)


@traced
def wait_task_zombie(k: Machine, current: Task, wo: WaitOpts, p: Task) -> int:
    """Reap ``p`` (or only look, WNOWAIT). A tracer that is not the parent hands a leader on to
    its real parent (EXIT_TRACE) instead of releasing it."""
    if not wo.wo_flags & WEXITED:
        return 0
    pid = pid_nr_ns(p.thread_pid, task_active_pid_ns(current))
    uid = from_kuid_munged(current.cred.user_ns, p.cred.uid)
    signal = p.signal
    status = signal.group_exit_code if signal.flags & SIGNAL_GROUP_EXIT else p.exit_code
    if not wo.wo_flags & WNOWAIT:
        state = EXIT_TRACE if ptrace_reparented(p) and p.exit_signal >= 0 else EXIT_DEAD
        p.exit_state = state
        wo.wo_stat = status
        if state == EXIT_TRACE:
            ptrace_unlink(k, p)
            state = EXIT_DEAD if do_notify_parent(k, p, p.exit_signal) else EXIT_ZOMBIE
            p.exit_state = state
        if state == EXIT_DEAD:
            release_task(k, p)
    if status & 0x7F == 0:
        wo.wo_info = (CLD_EXITED, status >> 8, pid, uid)
    else:
        wo.wo_info = (CLD_DUMPED if status & 0x80 else CLD_KILLED, status & 0x7F, pid, uid)
    return pid


def task_stopped_code(p: Task, ptrace: bool) -> tuple[object, str] | None:
    """Where the stop to report is kept: the tracee's exit_code, or the group's exit code."""
    if ptrace:
        if p.jobctl & JOBCTL_TRACED and not p.jobctl & JOBCTL_LISTENING:
            return p, "exit_code"
    elif p.signal.flags & SIGNAL_STOP_STOPPED:
        return p.signal, "group_exit_code"
    return None


def wait_task_stopped(k: Machine, current: Task, wo: WaitOpts, ptrace: bool, p: Task) -> int:
    """A stopped child (WUNTRACED), or any ptrace stop for its tracer, reported once:
    status (code << 8) | 0x7f."""
    if not ptrace and not wo.wo_flags & WUNTRACED:
        return 0
    where = task_stopped_code(p, ptrace)
    if where is None:
        return 0
    holder, field = where
    exit_code: int = getattr(holder, field)
    if not exit_code:
        return 0
    if not wo.wo_flags & WNOWAIT:
        setattr(holder, field, 0)
        wo.wo_stat = (exit_code << 8) | 0x7F
    pid = pid_nr_ns(p.thread_pid, task_active_pid_ns(current))
    uid = from_kuid_munged(current.cred.user_ns, p.cred.uid)
    wo.wo_info = (CLD_TRAPPED if ptrace else CLD_STOPPED, exit_code, pid, uid)
    return pid


def wait_task_continued(k: Machine, current: Task, wo: WaitOpts, p: Task) -> int:
    """A continued child (WCONTINUED), reported once: status 0xffff."""
    signal = p.signal
    if not wo.wo_flags & WCONTINUED or not signal.flags & SIGNAL_STOP_CONTINUED:
        return 0
    if not wo.wo_flags & WNOWAIT:
        signal.flags &= ~SIGNAL_STOP_CONTINUED
    pid = pid_nr_ns(p.thread_pid, task_active_pid_ns(current))
    uid = from_kuid_munged(current.cred.user_ns, p.cred.uid)
    wo.wo_stat = 0xFFFF
    wo.wo_info = (CLD_CONTINUED, SIGCONT, pid, uid)
    return pid
