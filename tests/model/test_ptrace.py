"""ptrace around creation: attaching, the event stops of fork, vfork, clone, exec and exit,
new children traced from birth, signal-delivery-stops, and what the tracer's wait sees."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    __WALL,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_PTRACE,
    CLONE_UNTRACED,
    CLONE_VFORK,
    CLONE_VM,
    EINVAL,
    EIO,
    ENOSYS,
    EPERM,
    ESRCH,
    PR_SET_DUMPABLE,
    PTRACE_ATTACH,
    PTRACE_CONT,
    PTRACE_DETACH,
    PTRACE_EVENT_CLONE,
    PTRACE_EVENT_EXEC,
    PTRACE_EVENT_EXIT,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_STOP,
    PTRACE_EVENT_VFORK,
    PTRACE_EVENT_VFORK_DONE,
    PTRACE_GETEVENTMSG,
    PTRACE_INTERRUPT,
    PTRACE_KILL,
    PTRACE_O_EXITKILL,
    PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXEC,
    PTRACE_O_TRACEEXIT,
    PTRACE_O_TRACEFORK,
    PTRACE_O_TRACEVFORK,
    PTRACE_O_TRACEVFORKDONE,
    PTRACE_PEEKDATA,
    PTRACE_SEIZE,
    PTRACE_SETOPTIONS,
    PTRACE_TRACEME,
    SIG_BLOCK,
    SIGCHLD,
    SIGKILL,
    SIGSTOP,
    SIGTRAP,
    SIGUSR1,
    WNOHANG,
    WUNTRACED,
    Pending,
    SyscallError,
)
from forklab.api import Kernel, TaskHandle
from forklab.uapi.sched import THREAD_FLAGS


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def stopped(sig: int, event: int = 0) -> int:
    """The wait status of a ptrace stop: (sig | event << 8) << 8 | 0x7f."""
    return ((sig | event << 8) << 8) | 0x7F


def seized(options: int) -> tuple[Kernel, TaskHandle, TaskHandle]:
    k = forklab.boot()
    tracer = k.task(1)
    tracee = k.task(tracer.fork())
    assert tracer.ptrace(PTRACE_SEIZE, tracee.pid, 0, options) == 0
    return k, tracer, tracee


def set_options(tracer: TaskHandle, pid: int, options: int) -> None:
    """Options change only in a stop: interrupt the seized tracee, set them, let it go."""
    tracer.ptrace(PTRACE_INTERRUPT, pid)
    assert tracer.wait4(pid, __WALL)[1] == stopped(SIGTRAP, PTRACE_EVENT_STOP)
    tracer.ptrace(PTRACE_SETOPTIONS, pid, 0, options)
    tracer.ptrace(PTRACE_CONT, pid)


def event_message(tracer: TaskHandle, pid: int) -> int:
    buf = tracer.mmap(4096)
    tracer.ptrace(PTRACE_GETEVENTMSG, pid, 0, buf)
    return tracer.read_u64(buf)


def test_fork_event_stops_the_parent_and_the_new_child_is_traced_from_birth() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACEFORK)
    child_pid = tracee.fork()  # known at once; the caller sleeps in the event stop
    assert tracee.state == "t"
    assert tracer.wait4(tracee.pid, 0) == (tracee.pid, stopped(SIGTRAP, PTRACE_EVENT_FORK))
    assert event_message(tracer, tracee.pid) == child_pid
    child = k.task(child_pid)
    assert child.status()["TracerPid"] == "1"
    # A seized child stops in PTRACE_EVENT_STOP before it runs a single instruction.
    assert child.state == "t"
    assert tracer.wait4(child_pid, __WALL) == (child_pid, stopped(SIGTRAP, PTRACE_EVENT_STOP))
    tracer.ptrace(PTRACE_CONT, child_pid)
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    assert tracee.state in "SR"
    assert child.getppid() == tracee.pid
    k.check()


def test_an_attached_parent_s_children_start_with_sigstop() -> None:
    k = forklab.boot()
    tracer = k.task(1)
    tracee = k.task(tracer.fork())
    tracer.ptrace(PTRACE_ATTACH, tracee.pid)
    assert tracer.wait4(tracee.pid, 0) == (tracee.pid, stopped(SIGSTOP))
    tracer.ptrace(PTRACE_SETOPTIONS, tracee.pid, 0, PTRACE_O_TRACEFORK)
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    child_pid = tracee.fork()
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_FORK)
    assert tracer.wait4(child_pid, __WALL) == (child_pid, stopped(SIGSTOP))
    k.check()


def test_the_event_follows_the_exit_signal_not_only_the_flags() -> None:
    # clone() with an exit signal other than SIGCHLD is a "clone" event, whatever else it is.
    k, tracer, tracee = seized(PTRACE_O_TRACEFORK)
    pid = tracee.clone(SIGUSR1)
    assert tracee.state in "SR"  # no TRACECLONE: no stop
    assert k.task(pid).status()["TracerPid"] == "0"
    set_options(tracer, tracee.pid, PTRACE_O_TRACECLONE)
    pid = tracee.clone(SIGUSR1)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_CLONE)
    assert k.task(pid).status()["TracerPid"] == "1"


def test_clone_untraced_and_clone_ptrace() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACEFORK)
    pid = tracee.clone(CLONE_UNTRACED | SIGCHLD)
    assert k.task(pid).status()["TracerPid"] == "0"
    set_options(tracer, tracee.pid, 0)
    pid = tracee.clone(CLONE_PTRACE | SIGCHLD)  # traced, but no event stop for the parent
    assert k.task(pid).status()["TracerPid"] == "1"
    assert tracer.wait4(pid, __WALL) == (pid, stopped(SIGTRAP, PTRACE_EVENT_STOP))


def test_vfork_and_vfork_done_events() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACEVFORK | PTRACE_O_TRACEVFORKDONE)
    child_pid = tracee.vfork()
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_VFORK)
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    assert tracee.state == "D"  # now in the vfork wait
    tracer.wait4(child_pid, __WALL)
    tracer.ptrace(PTRACE_CONT, child_pid)
    k.task(child_pid).exit(0)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_VFORK_DONE)
    assert event_message(tracer, tracee.pid) == child_pid
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    k.check()


def test_exec_event_and_the_legacy_sigtrap() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACEEXEC)
    tracee.execve("/bin/ls", ["ls"])
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_EXEC)
    assert event_message(tracer, tracee.pid) == tracee.pid
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    # Under PTRACE_ATTACH without TRACEEXEC, exec raises a plain SIGTRAP.
    other = k.task(tracer.fork())
    tracer.ptrace(PTRACE_ATTACH, other.pid)
    tracer.wait4(other.pid, 0)
    tracer.ptrace(PTRACE_CONT, other.pid)
    other.execve("/bin/ls", ["ls"])
    assert tracer.wait4(other.pid, 0)[1] == stopped(SIGTRAP)


def test_exit_event_and_the_tracer_reaps_its_own_child() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACEEXIT)
    tracee.exit(3)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_EXIT)
    assert event_message(tracer, tracee.pid) == 3 << 8
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    assert tracer.wait4(tracee.pid, 0) == (tracee.pid, 3 << 8)
    k.check()


def test_signal_delivery_stop_and_the_tracer_s_choice() -> None:
    k, tracer, tracee = seized(0)
    tracer.kill(tracee.pid, SIGUSR1)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGUSR1)
    tracer.ptrace(PTRACE_CONT, tracee.pid, 0, 0)  # suppressed
    assert tracee.alive
    tracer.kill(tracee.pid, SIGUSR1)
    tracer.wait4(tracee.pid, 0)
    tracer.ptrace(PTRACE_CONT, tracee.pid, 0, SIGUSR1)  # delivered: its default kills
    assert tracer.wait4(tracee.pid, 0) == (tracee.pid, SIGUSR1)
    k.check()


def test_a_traced_child_of_another_goes_to_its_real_parent_after_the_tracer() -> None:
    k = forklab.boot()
    init = k.task(1)
    tracer = k.task(init.fork())
    parent = k.task(init.fork())
    child = k.task(parent.fork())
    tracer.ptrace(PTRACE_SEIZE, child.pid, 0, 0)
    child.exit(7)
    # The real parent must wait: a traced zombie is the tracer's to see first.
    assert parent.wait4(child.pid, WNOHANG) == (0, 0)
    assert tracer.wait4(child.pid, __WALL) == (child.pid, 7 << 8)
    assert parent.wait4(child.pid, 0) == (child.pid, 7 << 8)
    k.check()


def test_a_dying_tracer_lets_go_and_exitkill_kills() -> None:
    k = forklab.boot()
    init = k.task(1)
    tracer = k.task(init.fork())
    free, killed = k.task(init.fork()), k.task(init.fork())
    tracer.ptrace(PTRACE_SEIZE, free.pid, 0, 0)
    tracer.ptrace(PTRACE_SEIZE, killed.pid, 0, PTRACE_O_EXITKILL)
    tracer.exit(0)
    assert free.alive and free.status()["TracerPid"] == "0"
    assert not killed.alive or killed.state == "Z"
    pids = {init.wait4(-1, 0)[0] for _ in range(2)}
    assert pids == {tracer.pid, killed.pid}
    k.check()


def test_traceme_and_interrupt_and_kill() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    assert child.ptrace(PTRACE_TRACEME, 0) == 0
    assert errno_of(lambda: child.ptrace(PTRACE_TRACEME, 0)) == EPERM
    init.kill(child.pid, SIGUSR1)
    assert init.wait4(child.pid, 0)[1] == stopped(SIGUSR1)
    init.ptrace(PTRACE_CONT, child.pid)
    k2, tracer, tracee = seized(0)
    tracer.ptrace(PTRACE_INTERRUPT, tracee.pid)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_STOP)
    tracer.ptrace(PTRACE_KILL, tracee.pid)
    assert tracer.wait4(tracee.pid, 0) == (tracee.pid, SIGKILL)
    k2.check()


def test_detach_resumes_with_a_signal() -> None:
    _, tracer, tracee = seized(0)
    tracer.ptrace(PTRACE_INTERRUPT, tracee.pid)
    tracer.wait4(tracee.pid, 0)
    tracer.ptrace(PTRACE_DETACH, tracee.pid, 0, 0)
    assert tracee.status()["TracerPid"] == "0"
    assert tracee.getpid() == tracee.pid


def test_errors_in_the_kernel_s_order() -> None:
    k, tracer, tracee = seized(0)
    assert errno_of(lambda: tracer.ptrace(PTRACE_CONT, 999)) == ESRCH
    assert errno_of(lambda: tracer.ptrace(PTRACE_CONT, tracee.pid)) == ESRCH  # not stopped
    assert errno_of(lambda: tracer.ptrace(PTRACE_SEIZE, tracee.pid, 0, 0)) == EPERM  # already traced
    assert errno_of(lambda: tracer.ptrace(PTRACE_SEIZE, 2, 0, 0)) == EPERM  # kthreadd
    assert errno_of(lambda: tracer.ptrace(PTRACE_ATTACH, 1)) == EPERM  # its own thread group
    other = k.task(tracer.fork())
    assert errno_of(lambda: tracer.ptrace(PTRACE_SEIZE, other.pid, 8, 0)) == EIO  # addr
    assert errno_of(lambda: tracer.ptrace(PTRACE_SEIZE, other.pid, 0, 1 << 30)) == EIO  # option
    assert errno_of(lambda: other.ptrace(PTRACE_KILL, tracee.pid)) == ESRCH  # not its tracer
    tracer.ptrace(PTRACE_INTERRUPT, tracee.pid)
    tracer.wait4(tracee.pid, 0)
    assert errno_of(lambda: tracer.ptrace(PTRACE_SETOPTIONS, tracee.pid, 0, 1 << 30)) == EINVAL
    assert errno_of(lambda: tracer.ptrace(PTRACE_CONT, tracee.pid, 0, 65)) == EIO
    assert errno_of(lambda: tracer.ptrace(0x4999, tracee.pid)) == EIO
    assert errno_of(lambda: tracer.ptrace(PTRACE_PEEKDATA, tracee.pid)) == ENOSYS
    assert errno_of(lambda: tracer.ptrace(PTRACE_INTERRUPT, other.pid)) == ESRCH


def test_an_unprivileged_tracer_needs_matching_ids() -> None:
    k = forklab.boot()
    init = k.task(1)
    a, b = k.task(init.fork()), k.task(init.fork())
    a.setresuid(1000, 1000, 1000)
    assert errno_of(lambda: a.ptrace(PTRACE_SEIZE, b.pid, 0, 0)) == EPERM
    b.setresuid(1000, 1000, 1000)
    # b changed its ids and is no longer dumpable: still refused until it says so.
    assert errno_of(lambda: a.ptrace(PTRACE_SEIZE, b.pid, 0, 0)) == EPERM
    b.prctl(forklab.PR_SET_DUMPABLE, 1)
    assert a.ptrace(PTRACE_SEIZE, b.pid, 0, 0) == 0


def test_the_event_message_is_the_new_pid_as_the_tracer_sees_it() -> None:
    k = forklab.boot()
    tracer = k.task(1)
    tracee = k.task(tracer.clone(CLONE_NEWPID | SIGCHLD))  # pid 1 of a namespace of its own
    tracer.ptrace(PTRACE_SEIZE, tracee.pid, 0, PTRACE_O_TRACEFORK)
    inside = tracee.fork()
    tracer.wait4(tracee.pid, 0)
    outside = event_message(tracer, tracee.pid)
    assert (inside, outside) == (2, tracee.pid + 1)
    assert k.task(outside).status()["NSpid"].split() == [str(outside), str(inside)]


def test_a_tracer_waits_for_a_traced_thread_without_wall() -> None:
    _, tracer, tracee = seized(PTRACE_O_TRACECLONE)
    stack = tracee.mmap(1 << 16)
    tid = tracee.clone(THREAD_FLAGS, stack=stack + (1 << 16))
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_CLONE)
    assert tracer.wait4(tid, 0) == (tid, stopped(SIGTRAP, PTRACE_EVENT_STOP))


def test_vfork_with_clone_ptrace_and_no_options_traces_the_child_only() -> None:
    k, tracer, tracee = seized(0)
    pid = tracee.clone(CLONE_VM | CLONE_VFORK | CLONE_PTRACE | SIGCHLD)
    assert tracee.state == "D"  # in the vfork wait, no event stop
    assert tracer.wait4(pid, __WALL) == (pid, stopped(SIGTRAP, PTRACE_EVENT_STOP))
    tracer.ptrace(PTRACE_CONT, pid)
    k.task(pid).exit(4)
    assert tracee.state in "SR"
    # The tracer sees the zombie first, then hands it to the real parent, whose SIGCHLD stops it.
    assert tracer.wait4(pid, __WALL) == (pid, 4 << 8)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(forklab.SIGCHLD)
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    assert tracee.wait4(pid, 0) == (pid, 4 << 8)
    k.check()


def test_an_exec_from_a_thread_waits_for_the_traced_leader_and_reports_its_former_tid() -> None:
    k, tracer, tracee = seized(PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)
    stack = tracee.mmap(1 << 16)
    tid = tracee.clone(THREAD_FLAGS, stack=stack + (1 << 16))
    tracer.wait4(tracee.pid, 0)
    tracer.wait4(tid, 0)
    tracer.ptrace(PTRACE_CONT, tid)
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    thread, leader = k.task(tid), tracee.pid
    thread.execve("/bin/ls", ["ls"])
    # de_thread killed the leader, which stops at its exit event (status 0: its group execs) ...
    assert tracer.wait4(-1, __WALL | WNOHANG) == (leader, stopped(SIGTRAP, PTRACE_EVENT_EXIT))
    assert event_message(tracer, leader) == 0
    assert thread.state == "D"  # ... and the exec waits for it
    tracer.ptrace(PTRACE_CONT, leader)
    # The thread has the leader's pid now, and stops in the exec event; the message is its old tid.
    assert tracer.wait4(-1, __WALL | WNOHANG) == (leader, stopped(SIGTRAP, PTRACE_EVENT_EXEC))
    assert event_message(tracer, leader) == tid
    tracer.ptrace(PTRACE_CONT, leader)
    assert thread.getpid() == thread.gettid() == leader
    k.check()


def test_a_group_signal_waits_for_the_thread_told_of_it() -> None:
    """A vfork child's SIGCHLD reaches its parent before the parent stops at vfork-done: the
    parent is the thread told of it (TIF_SIGPENDING), so a sibling thread passing through user
    space leaves it queued; the parent takes it once let go, and, traced, stops with it."""
    k, tracer, tracee = seized(PTRACE_O_TRACEVFORKDONE)
    stack = tracee.mmap(1 << 16)
    sibling = k.task(tracee.clone(THREAD_FLAGS, stack=stack + (1 << 16)))
    k.task(tracee.vfork()).exit(2)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(SIGTRAP, PTRACE_EVENT_VFORK_DONE)
    sibling.getpid()
    assert sibling.status()["ShdPnd"] == f"{1 << (forklab.SIGCHLD - 1):016x}"
    tracer.ptrace(PTRACE_CONT, tracee.pid)
    assert tracer.wait4(tracee.pid, 0)[1] == stopped(forklab.SIGCHLD)
    assert sibling.status()["ShdPnd"] == "0" * 16


def test_a_new_thread_looks_for_group_signals_on_its_first_run() -> None:
    k, _, tracee = seized(PTRACE_O_TRACEVFORKDONE)
    stack = tracee.mmap(1 << 16)
    sibling = k.task(tracee.clone(THREAD_FLAGS, stack=stack + (1 << 16)))
    k.task(tracee.vfork()).exit(2)  # SIGCHLD, aimed at the parent about to stop
    sibling.getpid()
    assert sibling.status()["ShdPnd"] != "0" * 16
    other = sibling.mmap(1 << 16)
    sibling.clone(THREAD_FLAGS, stack=other + (1 << 16))  # calculate_sigpending: it takes SIGCHLD
    assert sibling.status()["ShdPnd"] == "0" * 16


def test_unblocking_a_pending_signal_takes_it_at_once() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    child.sigprocmask(forklab.SIG_BLOCK, 1 << (SIGUSR1 - 1))
    init.kill(child.pid, SIGUSR1)
    assert child.getpid() == child.pid  # blocked: still pending
    with pytest.raises(forklab.TaskGoneError):  # its default action: it dies on the way back
        child.sigprocmask(forklab.SIG_UNBLOCK, 1 << (SIGUSR1 - 1))
    assert init.wait4(child.pid, 0) == (child.pid, SIGUSR1)


def test_a_tracer_s_wait_finds_its_newest_tracee_first() -> None:
    _, tracer, tracee = seized(PTRACE_O_TRACEFORK)
    pid = tracee.fork()  # both now stop: the parent in the fork event, the child in its first trap
    # __WCLONE skips the tracee among the tracer's children; among its tracees the child is newest.
    assert tracer.wait4(-1, forklab.__WCLONE | WNOHANG) == (pid, stopped(SIGTRAP, PTRACE_EVENT_STOP))
    assert tracer.wait4(-1, forklab.__WCLONE | WNOHANG) == (tracee.pid, stopped(SIGTRAP, PTRACE_EVENT_FORK))


def test_a_thread_made_while_the_group_is_stopped_joins_the_stop() -> None:
    k = forklab.boot()
    tracer = k.task(1)
    tracee = k.task(tracer.fork())
    tracer.ptrace(PTRACE_ATTACH, tracee.pid)
    tracer.wait4(tracee.pid, 0)
    tracer.ptrace(PTRACE_CONT, tracee.pid, 0, SIGSTOP)  # a group stop ...
    tracer.wait4(tracee.pid, __WALL | WNOHANG)
    tracer.ptrace(PTRACE_CONT, tracee.pid)  # ... the tracee is let out of; its group stays stopped
    stack = tracee.mmap(1 << 16)
    thread = k.task(tracee.clone(THREAD_FLAGS, stack=stack + (1 << 16)))
    assert thread.state == "T"  # task_join_group_stop: it stops on its first run
    tracer.kill(tracee.pid, forklab.SIGCONT)
    assert thread.gettid() == thread.pid
    k.check()


def test_a_thread_that_exits_completes_the_group_stop_it_owed() -> None:
    # exit_signals(): a thread held in its exit event when SIGSTOP came still owes its part of the
    # group stop; exiting counts as that part, and the real parent hears of the stop from it.
    k = forklab.boot()
    tracer = k.task(1)
    parent = k.task(tracer.fork())
    parent.sigprocmask(SIG_BLOCK, 1 << (SIGCHLD - 1))  # keeps the SIGCHLD pending, to be seen
    leader = parent.task(parent.fork())
    thread = leader.task(leader.clone(THREAD_FLAGS))
    tracer.ptrace(PTRACE_SEIZE, thread.pid, 0, PTRACE_O_TRACEEXIT)
    thread.exit(5)
    assert tracer.wait4(thread.pid, __WALL) == (thread.pid, stopped(SIGTRAP, PTRACE_EVENT_EXIT))
    tracer.kill(leader.pid, SIGSTOP)
    assert leader.state == "T" and parent.status()["ShdPnd"] == "0" * 16
    assert parent.wait4(leader.pid, WUNTRACED | WNOHANG) == (0, 0)  # not until the thread stops
    tracer.ptrace(PTRACE_CONT, thread.pid)
    assert parent.status()["ShdPnd"] == f"{1 << (SIGCHLD - 1):016x}"
    assert parent.wait4(leader.pid, WUNTRACED | WNOHANG) == (leader.pid, 0x137F)
    assert tracer.wait4(thread.pid, __WALL) == (thread.pid, 5 << 8)
    k.check()


@pytest.mark.parametrize(("version", "refused"), [("6.18", True), ("6.12", False)])
def test_a_task_past_exit_mm_is_as_dumpable_as_its_mm_was(version: str, refused: bool) -> None:
    # PTRACE_EXIT_DUMPABLE: a namespace's init waits in zap_pid_ns_processes with no mm; it had
    # made itself non-dumpable, so only CAP_SYS_PTRACE in the initial namespace lets a tracer in.
    k = forklab.boot(version)
    tracer = k.task(k.task(1).fork())
    tracer.unshare(CLONE_NEWUSER | CLONE_NEWPID)
    ns_init = tracer.task(tracer.fork())
    last = tracer.fork()
    ns_init.prctl(PR_SET_DUMPABLE, 0)
    assert isinstance(ns_init.exit_group(6), Pending) and ns_init.task_struct.mm is None
    if refused:
        assert errno_of(lambda: tracer.ptrace(PTRACE_SEIZE, ns_init.pid)) == EPERM
        assert k.task(1).ptrace(PTRACE_SEIZE, ns_init.pid) == 0  # CAP_SYS_PTRACE in the initial namespace
    else:
        assert tracer.ptrace(PTRACE_SEIZE, ns_init.pid) == 0
    tracer.wait4(last, __WALL)
    k.check()
