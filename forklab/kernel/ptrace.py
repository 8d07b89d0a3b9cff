"""kernel/ptrace.c and the ptrace hooks of fork, exec and exit.

A tracer attaches (PTRACE_ATTACH, PTRACE_SEIZE, or the child asks with PTRACE_TRACEME) and
becomes the tracee's ``parent``, while ``real_parent`` stays. The tracee then stops in
TASK_TRACED whenever it would take a signal, at the events its tracer asked for (fork,
vfork, clone, exec, exit, vfork-done), and, if seized, in PTRACE_EVENT_STOP traps; the
tracer sees each stop through wait and lets it go with PTRACE_CONT (or detaches, or kills).
New children of a tracee whose event is enabled are traced from birth.

Register and memory access (PEEK/POKE, GETREGS, ...), syscall stops and single-stepping are
not modelled: those requests fail with ENOSYS, never a silent success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from forklab.kernel.cred import capable, ns_capable
from forklab.kernel.errors import KernelError, NotModelled, WouldBlock
from forklab.kernel.mm.mm import SUID_DUMP_USER, put_user_u64
from forklab.kernel.pid import PIDTYPE_PID, find_pid_ns, pid_nr_ns, pid_task
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.signal import (
    JOBCTL_LISTENING,
    JOBCTL_STOP_PENDING,
    JOBCTL_STOPPED,
    JOBCTL_TRACED,
    JOBCTL_TRAP_MASK,
    JOBCTL_TRAP_STOP,
    JOBCTL_TRAPPING,
    SI_KERNEL,
    SI_USER,
    SIGNAL_STOP_STOPPED,
    SigInfo,
    do_notify_parent,
    fatal_signal_pending,
    ptrace_do_notify,
    ptrace_signal_wake_up,
    ptrace_stop_return,
    send_sig,
    send_signal_locked,
    signal_wake_up_state,
    task_clear_jobctl_pending,
    task_clear_jobctl_trapping,
    task_set_jobctl_pending,
    thread_group_empty,
    user_siginfo,
    wake_up_parent,
    wake_up_state,
)
from forklab.kernel.task import (
    __TASK_STOPPED,
    __TASK_TRACED,
    EXIT_DEAD,
    EXIT_ZOMBIE,
    PF_EXITING,
    PF_KTHREAD,
    TASK_KILLABLE,
    TASK_TRACED,
)
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi import ptrace as P
from forklab.uapi import signal as S
from forklab.uapi.capability import CAP_SYS_ADMIN, CAP_SYS_PTRACE
from forklab.uapi.wait import CLD_TRAPPED

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid import Pid
    from forklab.kernel.task import Task

T = TypeVar("T")

PT_PTRACED = 0x00000001
PT_SEIZED = 0x00010000
PT_OPT_FLAG_SHIFT = 3
PT_EXITKILL = P.PTRACE_O_EXITKILL << PT_OPT_FLAG_SHIFT
PT_SUSPEND_SECCOMP = P.PTRACE_O_SUSPEND_SECCOMP << PT_OPT_FLAG_SHIFT

PTRACE_EVENT_FORK = P.PTRACE_EVENT_FORK
PTRACE_EVENT_VFORK = P.PTRACE_EVENT_VFORK
PTRACE_EVENT_CLONE = P.PTRACE_EVENT_CLONE
PTRACE_EVENT_EXEC = P.PTRACE_EVENT_EXEC
PTRACE_EVENT_VFORK_DONE = P.PTRACE_EVENT_VFORK_DONE
PTRACE_EVENT_EXIT = P.PTRACE_EVENT_EXIT

# Requests a real tracer may make that need registers, memory or syscall stops.
NOT_MODELLED = {
    P.PTRACE_PEEKTEXT, P.PTRACE_PEEKDATA, P.PTRACE_PEEKUSR, P.PTRACE_POKETEXT, P.PTRACE_POKEDATA,
    P.PTRACE_POKEUSR, P.PTRACE_SINGLESTEP, P.PTRACE_GETREGS, P.PTRACE_SETREGS, P.PTRACE_SYSCALL,
    P.PTRACE_GETSIGINFO, P.PTRACE_SETSIGINFO, P.PTRACE_LISTEN,
}  # fmt: skip


def pt_event_flag(event: int) -> int:
    return 1 << (event + PT_OPT_FLAG_SHIFT)


def ptrace_event_enabled(task: Task, event: int) -> bool:
    return bool(task.ptrace & pt_event_flag(event))


# ---- links between tracer and tracee -------------------------------------------------------------


def ptrace_link(child: Task, new_parent: Task) -> None:
    """The newest tracee heads the tracer's list (list_add): a wait looks at it first."""
    new_parent.ptraced = {child: None, **new_parent.ptraced}
    child.parent = new_parent


def ptrace_unlink(k: Machine, child: Task) -> None:
    """__ptrace_unlink(): back to the real parent; a pending or current stop is sorted out."""
    tracer = child.parent
    if tracer is not None:
        tracer.ptraced.pop(child, None)
    child.ptrace = 0
    child.parent = child.real_parent
    task_clear_jobctl_pending(k, child, JOBCTL_TRAP_MASK)
    task_clear_jobctl_trapping(k, child)
    signal = child.signal
    # A group stop still in force takes the thread back once it is let go.
    if not child.flags & PF_EXITING and (signal.flags & SIGNAL_STOP_STOPPED or signal.group_stop_count):
        child.jobctl |= JOBCTL_STOP_PENDING
    if child.jobctl & (JOBCTL_STOP_PENDING | JOBCTL_TRACED):
        ptrace_signal_wake_up(k, child, True)


def ptrace_init_task(k: Machine, current: Task, child: Task, ptrace: bool) -> None:
    """A new task starts untraced with its real parent as parent, unless its creator's tracer
    takes it too: a seized child then traps at once, an attached one has SIGSTOP pending."""
    child.ptraced = {}
    child.jobctl = 0
    child.ptrace = 0
    child.parent = child.real_parent
    if ptrace and current.ptrace:
        child.ptrace = current.ptrace
        assert current.parent is not None
        ptrace_link(child, current.parent)
        if child.ptrace & PT_SEIZED:
            task_set_jobctl_pending(child, JOBCTL_TRAP_STOP)
        else:
            child.pending.signal |= S.sigmask(S.SIGSTOP)


def exit_ptrace(k: Machine, tracer: Task, dead: list[Task]) -> None:
    """The tracer is exiting: every tracee goes free (killed first if it asked PTRACE_O_EXITKILL)."""
    for p in list(tracer.ptraced):
        if p.ptrace & PT_EXITKILL:
            send_sig(k, S.SIGKILL, p, group=False)
        if ptrace_detach_task(k, tracer, p):
            dead.append(p)


def ptrace_detach_task(k: Machine, tracer: Task, p: Task) -> bool:
    """__ptrace_detach(): unlink; a zombie is handed on to its real parent. True if it must be released."""
    ptrace_unlink(k, p)
    if p.exit_state != EXIT_ZOMBIE:
        return False
    dead = p.exit_signal < 0  # a traced thread that is not a leader: nobody else waits for it
    if not dead and thread_group_empty(p):
        real_parent = p.real_parent
        assert real_parent is not None
        if real_parent.signal is not tracer.signal:
            dead = do_notify_parent(k, p, p.exit_signal)
        elif ignoring_children(tracer):
            wake_up_parent(k, p, tracer)
            dead = True
    if dead:
        p.exit_state = EXIT_DEAD
    return dead


def ignoring_children(tracer: Task) -> bool:
    """The tracer's group ignores SIGCHLD or asked for SA_NOCLDWAIT: its children reap themselves."""
    assert tracer.sighand is not None
    handler, flags, _ = tracer.sighand.action[S.SIGCHLD - 1]
    return handler == S.SIG_IGN or bool(flags & S.SA_NOCLDWAIT)


# ---- permission --------------------------------------------------------------------------------


def ptrace_may_access(k: Machine, current: Task, task: Task) -> bool:
    """__ptrace_may_access(PTRACE_MODE_ATTACH_REALCREDS) and the capability module's check."""
    if task.signal is current.signal:
        return True
    cred, tcred = current.cred, task.cred
    same_ids = all(cred.uid == v for v in (tcred.euid, tcred.suid, tcred.uid)) and all(
        cred.gid == v for v in (tcred.egid, tcred.sgid, tcred.gid)
    )
    if not same_ids and not ns_capable(current, tcred.user_ns, CAP_SYS_PTRACE):
        return False
    if not task_still_dumpable(k, current, task):
        return False
    # cap_ptrace_access_check(): the tracer must hold every capability the tracee has.
    if cred.user_ns is tcred.user_ns and not tcred.cap_permitted & ~cred.cap_permitted:
        return True
    return ns_capable(current, tcred.user_ns, CAP_SYS_PTRACE)


def task_still_dumpable(k: Machine, current: Task, task: Task) -> bool:
    """A task that is not dumpable by its user (setuid, setresgid, PR_SET_DUMPABLE 0) may be
    inspected only with CAP_SYS_PTRACE over its memory's owner; once its mm is gone, over the
    initial namespace, unless its mm was dumpable at exit_mm (PTRACE_EXIT_DUMPABLE)."""
    mm = task.mm
    if mm is not None:
        if mm.dumpable == SUID_DUMP_USER:
            return True
        assert mm.user_ns is not None  # set by mm_init()
        return ns_capable(current, mm.user_ns, CAP_SYS_PTRACE)
    if not k.has(Behaviour.PTRACE_EXIT_DUMPABLE) or task.user_dumpable:
        return True
    return ns_capable(current, k.init_user_ns, CAP_SYS_PTRACE)


def check_ptrace_options(k: Machine, current: Task, data: int) -> None:
    if data & ~P.PTRACE_O_MASK:
        raise KernelError(E.EINVAL, f"ptrace: unknown options {data:#x}")
    if data & P.PTRACE_O_SUSPEND_SECCOMP:
        if not capable(k, current, CAP_SYS_ADMIN):
            raise KernelError(E.EPERM, "ptrace: PTRACE_O_SUSPEND_SECCOMP needs CAP_SYS_ADMIN")
        if current.ptrace & PT_SUSPEND_SECCOMP:
            raise KernelError(E.EPERM, "ptrace: a tracee may not suspend seccomp for others")


# ---- the system call ---------------------------------------------------------------------------


def sys_ptrace(k: Machine, current: Task, request: int, pid: int, addr: int, data: int) -> int:
    if request == P.PTRACE_TRACEME:
        return ptrace_traceme(current)
    child = pid_task(find_pid_ns(pid, task_active_pid_ns(current)), PIDTYPE_PID)
    if child is None:
        raise KernelError(E.ESRCH, f"ptrace: no task {pid}")
    if request in (P.PTRACE_ATTACH, P.PTRACE_SEIZE):
        return ptrace_attach(k, current, child, request, addr, data)
    ptrace_check_attach(current, child, request in (P.PTRACE_KILL, P.PTRACE_INTERRUPT))
    return ptrace_request(k, current, child, request, addr, data)


def ptrace_traceme(current: Task) -> int:
    if current.ptrace:
        raise KernelError(E.EPERM, "ptrace(PTRACE_TRACEME): already traced")
    parent = current.real_parent
    assert parent is not None
    # A parent already past exit_ptrace() takes no tracee; the call still returns 0.
    if not parent.flags & PF_EXITING:
        current.ptrace = PT_PTRACED
        ptrace_link(current, parent)
    return 0


def ptrace_attach(k: Machine, current: Task, task: Task, request: int, addr: int, flags: int) -> int:
    seize = request == P.PTRACE_SEIZE
    if seize:
        if addr:
            raise KernelError(E.EIO, "ptrace(PTRACE_SEIZE): addr must be 0")
        if flags & ~P.PTRACE_O_MASK:
            raise KernelError(E.EIO, f"ptrace(PTRACE_SEIZE): unknown options {flags:#x}")
        check_ptrace_options(k, current, flags)
        flags = PT_PTRACED | PT_SEIZED | (flags << PT_OPT_FLAG_SHIFT)
    else:
        flags = PT_PTRACED
    if task.flags & PF_KTHREAD:
        raise KernelError(E.EPERM, "ptrace_attach: a kernel thread cannot be traced")
    if task.signal is current.signal:
        raise KernelError(E.EPERM, "ptrace_attach: a thread cannot trace its own thread group")
    if not ptrace_may_access(k, current, task):
        raise KernelError(E.EPERM, "ptrace_attach: __ptrace_may_access refused")
    if task.exit_state:
        raise KernelError(E.EPERM, "ptrace_attach: the task is exiting")
    if task.ptrace:
        raise KernelError(E.EPERM, "ptrace_attach: the task is already traced")
    task.ptrace = flags
    ptrace_link(task, current)
    ptrace_set_stopped(k, task, seize)
    return wait_for_trap(k, task)


def wait_for_trap(k: Machine, task: Task) -> int:
    """A tracee that was stopped re-traps for its new tracer, which waits for it (killably)."""
    if not task.jobctl & JOBCTL_TRAPPING:
        return 0
    raise WouldBlock(k.bit_wait, lambda: wait_for_trap(k, task), TASK_KILLABLE, wake_if=lambda t: t is task)


def ptrace_set_stopped(k: Machine, task: Task, seize: bool) -> None:
    """PTRACE_ATTACH sends SIGSTOP; a task already in a group stop re-traps for its new tracer."""
    if not seize:
        send_signal_locked(k, S.SIGSTOP, SigInfo(S.SIGSTOP, SI_KERNEL), task, group=False)
    if task.state & __TASK_STOPPED and task_set_jobctl_pending(task, JOBCTL_TRAP_STOP | JOBCTL_TRAPPING):
        task.jobctl &= ~JOBCTL_STOPPED
        signal_wake_up_state(k, task, __TASK_STOPPED)


def ptrace_check_attach(current: Task, child: Task, ignore_state: bool) -> None:
    """The caller traces ``child``, which (unless ``ignore_state``) is stopped for it."""
    if not child.ptrace or child.parent is not current:
        raise KernelError(E.ESRCH, "ptrace: the caller does not trace that task")
    if ignore_state:
        return
    if child.jobctl & JOBCTL_LISTENING or not child.jobctl & JOBCTL_TRACED or fatal_signal_pending(child):
        raise KernelError(E.ESRCH, "ptrace: the tracee is not in a ptrace stop")


def ptrace_request(k: Machine, current: Task, child: Task, request: int, addr: int, data: int) -> int:
    if request == P.PTRACE_SETOPTIONS:
        check_ptrace_options(k, current, data)
        child.ptrace = (child.ptrace & ~(P.PTRACE_O_MASK << PT_OPT_FLAG_SHIFT)) | (data << PT_OPT_FLAG_SHIFT)
        return 0
    if request == P.PTRACE_GETEVENTMSG:
        put_user_u64(current.mm, data, child.ptrace_message)
        return 0
    if request == P.PTRACE_INTERRUPT:
        if not child.ptrace & PT_SEIZED:
            raise KernelError(E.EIO, "ptrace(PTRACE_INTERRUPT): only for a seized tracee")
        if task_set_jobctl_pending(child, JOBCTL_TRAP_STOP):
            ptrace_signal_wake_up(k, child, bool(child.jobctl & JOBCTL_LISTENING))
        return 0
    if request == P.PTRACE_KILL:
        # SEND_SIG_NOINFO, as from the tracer: a pid namespace's init it can see ignores it.
        send_signal_locked(k, S.SIGKILL, user_siginfo(current, S.SIGKILL, SI_USER, child), child, group=False)
        return 0
    if request == P.PTRACE_CONT:
        return ptrace_resume(k, child, data)
    if request == P.PTRACE_DETACH:
        return ptrace_detach(k, current, child, data)
    if request in NOT_MODELLED:
        raise NotModelled(f"ptrace request {request:#x} (registers, memory and syscall stops)")
    raise KernelError(E.EIO, f"ptrace: unknown request {request:#x}")


def ptrace_resume(k: Machine, child: Task, data: int) -> int:
    if not S.valid_signal(data):
        raise KernelError(E.EIO, f"ptrace: {data} is not a signal")
    child.exit_code = data
    child.jobctl &= ~JOBCTL_TRACED
    wake_up_state(k, child, __TASK_TRACED)
    return 0


def ptrace_detach(k: Machine, current: Task, child: Task, data: int) -> int:
    from forklab.kernel.exit import release_task

    if not S.valid_signal(data):
        raise KernelError(E.EIO, f"ptrace(PTRACE_DETACH): {data} is not a signal")
    child.exit_code = data
    if ptrace_detach_task(k, current, child):
        release_task(k, child)
    return 0


# ---- the tracee's side: event stops -------------------------------------------------------------


def ptrace_event(k: Machine, current: Task, event: int, message: int, then: Callable[[], T], known: object = None) -> T:
    """Stop for ``event`` if the tracer asked for it, and carry on with ``then`` once let go.

    An exec without PTRACE_O_TRACEEXEC under plain PTRACE_ATTACH raises SIGTRAP instead, as
    it always has. ``known`` is the call's result when it is known before the stop ends (the
    pid a fork returns).
    """
    if ptrace_event_enabled(current, event):
        exit_code = (event << 8) | S.SIGTRAP
        if ptrace_do_notify(k, current, S.SIGTRAP, exit_code, CLD_TRAPPED, message):

            def resumed() -> T:
                ptrace_stop_return(current)  # the tracer's signal is not delivered after an event
                return then()

            raise WouldBlock(None, resumed, TASK_TRACED, value=known)
    elif event == PTRACE_EVENT_EXEC and current.ptrace & (PT_PTRACED | PT_SEIZED) == PT_PTRACED:
        send_sig(k, S.SIGTRAP, current, group=False)
    return then()


def ptrace_event_pid(k: Machine, current: Task, event: int, pid: Pid, then: Callable[[], T], known: object) -> T:
    """An event whose message is a pid, as the tracer's pid namespace numbers it."""
    tracer = current.parent
    message = pid_nr_ns(pid, task_active_pid_ns(tracer)) if tracer is not None else 0
    return ptrace_event(k, current, event, message, then, known)
