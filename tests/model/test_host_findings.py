"""Behaviours the diff campaign against the host kernel (6.18.44) found the model getting wrong.

Each test pins what the host did, so the model cannot drift back.
"""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    __WALL,
    EACCES,
    EINVAL,
    EPERM,
    ESRCH,
    SIG_IGN,
    SIGCHLD,
    SIGTERM,
    SIGUSR1,
    SyscallError,
)
from tests.conftest import threaded_child


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def test_fatal_signal_to_idle_process_kills_every_thread(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A default-action SIGTERM sent to a process whose threads all sit between calls kills the
    whole group: the signal being sent does not make its target look busy (TIF_SIGPENDING)."""
    leader, threads = threaded_child(init, 2)
    init.kill(leader.pid, SIGTERM)
    assert not any(t.alive for t in threads)
    assert init.wait4(leader.pid) == (leader.pid, SIGTERM)
    k.check()


def test_group_kill_wakes_threads_from_the_leader(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """complete_signal() gives SIGKILL to every thread in list order, leader first
    (__for_each_thread), whichever thread was chosen to take the signal; the model runs them
    in that order. On the host the woken threads race on two CPUs: 20 runs of this sequence
    gave five different exit orders (the diff lists that as "group-exit-race")."""
    leader, threads = threaded_child(init, 2)
    k.clear_trace()
    init.tgkill(leader.pid, threads[0].pid, SIGTERM)
    exits = [(e.pid, dict(e.fields)["group_dead"]) for e in k.trace_events() if e.name == "sched_process_exit"]
    assert exits == [(leader.pid, False), (threads[0].pid, False), (threads[1].pid, True)]
    init.wait4(leader.pid)


def test_kill_by_thread_id_signals_the_process(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """kill(tid) of a thread that is not the leader names its whole process (PIDTYPE_PID lookup)."""
    leader, threads = threaded_child(init, 1)
    init.kill(threads[0].pid, SIGTERM)
    assert init.wait4(leader.pid) == (leader.pid, SIGTERM)
    assert errno_of(lambda: init.kill(threads[0].pid, 0)) == ESRCH


def test_exec_recomputes_capabilities(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """After setresuid to a non-root uid, exec leaves no capabilities (the host shows CapPrm 0);
    root in its namespace gets the bounding set back."""
    child = init.task(init.fork())
    child.setresuid(0, 1000, 1000)
    child.execve("/bin/sh", ["sh"])
    status = child.status()
    bounding = status["CapBnd"]
    assert status["CapPrm"] == bounding and status["CapEff"] == "0" * 16  # ruid 0 but euid 1000
    child.setresuid(1000, 1000, 1000)
    child.execve("/bin/sh", ["sh"])
    status = child.status()
    assert status["CapPrm"] == status["CapEff"] == "0" * 16
    root = init.task(init.fork())
    root.execve("/bin/sh", ["sh"])
    assert root.status()["CapEff"] == bounding


def test_comm_write_keeps_its_newline(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Writing /proc/self/comm takes the first 15 bytes as they are, a trailing newline too."""
    init.write_file("/proc/self/comm", "renamed\n")
    assert init.comm == "renamed\n"
    assert init.read_file("/proc/self/comm") == "renamed\n\n"
    init.write_file("/proc/self/comm", "a-name-longer-than-fifteen")
    assert init.comm == "a-name-longer-t"


def test_comm_write_by_another_process_is_refused(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = init.task(init.fork())
    assert errno_of(lambda: init.write_file(f"/proc/{child.pid}/comm", "x")) == EINVAL


@pytest.mark.parametrize(("zombies", "waits"), [(0, 1), (2, 3)])
def test_zap_pid_ns_traces_one_wait_per_call(
    k: forklab.Kernel, init: forklab.TaskHandle, zombies: int, waits: int
) -> None:
    """A pid namespace's init that exits kills its tasks and waits for them until ECHILD: one
    sched_process_wait per kernel_wait4 call, however often that call sleeps. Killed children
    reap themselves (SIGCHLD is now ignored), so live children cost one call in all; zombies
    from before cost one call each, then the call that finds none left."""
    ns_init = init.task(init.clone(forklab.CLONE_NEWPID | SIGCHLD))
    for _ in range(2):
        child = ns_init.task(ns_init.fork())
        if zombies:
            child.exit(0)
    k.clear_trace()
    ns_init.exit(0)
    assert sum(event.name == "sched_process_wait" for event in k.trace_events()) == waits
    init.wait4(ns_init.pid, __WALL)
    k.check()


def test_setsid_and_setpgid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Linux's rules, in its order of checks (kernel/sys.c), as the host answered them."""
    child = init.task(init.fork())
    assert child.setsid() == child.pid
    assert child.getsid() == child.pid
    assert child.getpgid() == child.pid
    assert errno_of(child.setsid) == EPERM  # already a session leader
    assert errno_of(lambda: child.setpgid(0, 0)) == EPERM  # a session leader keeps its group
    grandchild = child.task(child.fork())
    child.setpgid(grandchild.pid, 0)  # its own group, in the caller's session
    assert grandchild.getpgid() == grandchild.pid
    child.setpgid(grandchild.pid, child.pid)  # back into the leader's group
    assert grandchild.getpgid() == child.pid
    assert errno_of(lambda: child.setpgid(grandchild.pid, -1)) == EINVAL
    assert errno_of(lambda: child.setpgid(grandchild.pid, 999)) == EPERM  # no such group in the session
    assert errno_of(lambda: init.setpgid(grandchild.pid, 0)) == ESRCH  # not init's child
    grandchild.execve("/bin/sh", ["sh"])
    assert errno_of(lambda: child.setpgid(grandchild.pid, 0)) == EACCES  # it has exec'd
    other = init.task(init.fork())
    other.setsid()
    assert errno_of(lambda: init.setpgid(other.pid, 0)) == EPERM  # a child in another session
    assert errno_of(lambda: init.getsid(4000)) == ESRCH
    k.check()


def test_setsid_fails_when_a_group_has_the_callers_id(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = init.task(init.fork())
    child.setpgid(0, 0)  # leads a process group, not a session
    assert errno_of(child.setsid) == EPERM


def test_process_group_outlives_its_leader(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A group's id stays in use while a member lives, and is freed with the last one."""
    init.sigaction(SIGCHLD, SIG_IGN)
    leader = init.task(init.fork())
    leader.setpgid(0, 0)
    member = leader.task(leader.fork())
    leader.exit(0)
    assert member.getpgid() == leader.pid
    pids = k.counts()["slab:pid"]
    member.exit(0)  # init ignores SIGCHLD: the member is reaped at once, its group id with it
    assert k.counts()["slab:pid"] == pids - 2
    k.check()


def test_signal_to_blocked_thread_goes_to_another(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A process signal skips a thread that blocks it and wakes one that does not."""
    leader, threads = threaded_child(init, 1)
    leader.sigaction(SIGUSR1, 0x401000)
    leader.sigprocmask(forklab.SIG_BLOCK, 1 << (SIGUSR1 - 1))
    init.kill(leader.pid, SIGUSR1)
    assert threads[0].status()["SigPnd"] == "0" * 16  # delivered to the thread, and handled
    assert leader.status()["ShdPnd"] == "0" * 16


@pytest.mark.parametrize(("version", "queued"), [("6.18", False), ("5.15", True)])
def test_signal_to_a_dying_group(version: str, queued: bool) -> None:
    """Since 5.17 a signal sent to a group that is already exiting is dropped (the host shows a
    zombie's ShdPnd empty after a kill); before, it was queued unless ignored."""
    k = forklab.boot(version=version)
    init = k.task(1)
    child = init.task(init.fork())
    child.exit_group(0)
    init.kill(child.pid, SIGUSR1)
    assert child.status()["ShdPnd"] == ("0000000000000200" if queued else "0" * 16)


def test_kill_compares_kernel_ids_across_user_namespaces(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A child in a new user namespace (uid 65534 inside, no maps) keeps its kuid: it may signal
    a sibling of the same kuid, as the host allowed."""
    sibling = init.task(init.fork())
    nobody = init.task(init.clone(forklab.CLONE_NEWUSER | SIGCHLD))
    assert nobody.getuid() == 65534
    nobody.kill(sibling.pid, SIGUSR1)
    assert init.wait4(sibling.pid) == (sibling.pid, SIGUSR1)


def test_changing_ids_makes_a_task_non_dumpable(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """setresuid away from root clears dumpable (fs.suid_dumpable is 0) and the parent-death
    signal; the task's /proc files then belong to root, so it cannot write its own uid_map
    until PR_SET_DUMPABLE gives them back (all as the host answered)."""
    child = init.task(init.fork())
    child.prctl(forklab.PR_SET_PDEATHSIG, SIGUSR1)
    assert child.prctl(forklab.PR_GET_DUMPABLE) == 1
    child.setresuid(1000, 1000, 1000)
    assert child.prctl(forklab.PR_GET_DUMPABLE) == 0
    assert child.prctl(forklab.PR_GET_PDEATHSIG) == 0
    child.unshare(forklab.CLONE_NEWUSER)
    assert errno_of(lambda: child.write_file("/proc/self/uid_map", "0 1000 1")) == EACCES
    child.prctl(forklab.PR_SET_DUMPABLE, 1)
    child.write_file("/proc/self/uid_map", "0 1000 1")
    assert errno_of(lambda: child.prctl(forklab.PR_SET_DUMPABLE, 2)) == EINVAL
    # exec makes it dumpable again when its ids are not mixed; a fork inherits the setting.
    other = init.task(init.fork())
    other.setresuid(0, 1000, 0)
    grandchild = other.task(other.fork())
    assert grandchild.prctl(forklab.PR_GET_DUMPABLE) == 0
    other.execve("/bin/sh", ["sh"])
    assert other.prctl(forklab.PR_GET_DUMPABLE) == 0  # euid 1000 != uid 0: still not dumpable
    grandchild.setresuid(1000, 1000, 1000)
    grandchild.execve("/bin/sh", ["sh"])
    assert grandchild.prctl(forklab.PR_GET_DUMPABLE) == 1
    assert init.read_file("/proc/sys/fs/suid_dumpable") == "0\n"


def test_the_thread_that_waited_last_reaps(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Two threads wait for the same child: add_wait_queue() puts the later one at the head of
    wait_chldexit, it is woken first and reaps; the other sleeps on (as on the host)."""
    leader, threads = threaded_child(init, 1)
    child = leader.task(leader.fork())
    leader.fork()  # another child: the earlier waiter still has one to wait for
    early = threads[0].wait4(-1, __WALL)
    late = leader.wait4(child.pid, __WALL)
    assert isinstance(early, forklab.Pending) and isinstance(late, forklab.Pending)
    init.kill(child.pid, forklab.SIGKILL)
    assert late.done and late.result() == (child.pid, forklab.SIGKILL)
    assert not early.done


def test_a_pidfd_cannot_seek(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    words = init.mmap(4096)
    init.clone3(flags=forklab.CLONE_PIDFD, pidfd=words, exit_signal=SIGCHLD)
    pidfd = init.read_u32(words)
    assert errno_of(lambda: init.lseek(pidfd, 0, forklab.SEEK_SET)) == forklab.ESPIPE


def test_comm_takes_every_write_whatever_the_offset(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """comm_write() neither checks nor moves the file position: a read after the writes starts
    at offset 0 (the host read back the whole name)."""
    fd = init.open("/proc/self/comm", forklab.O_RDWR)
    assert init.write(fd, b"first") == 5
    assert init.write(fd, b"second") == 6
    assert init.comm == "second"
    assert init.read(fd, 16) == b"second\n"


def test_wait_looks_at_the_callers_children_then_the_next_threads(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """do_wait() walks the thread group from the caller round the list: a thread's wait finds
    the zombie of the thread after it before the leader's (the host reaped the later one)."""
    leader, (first, second) = threaded_child(init, 2)
    older = leader.task(leader.fork())
    younger = second.task(second.fork())
    older.exit(1)
    younger.exit(2)
    assert first.wait4(-1, forklab.WNOHANG | __WALL) == (younger.pid, 0x200)
    assert first.wait4(-1, forklab.WNOHANG | __WALL) == (older.pid, 0x100)


def test_a_thread_stopping_its_own_process_returns_first(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """kill() of the caller's own process picks the idle leader (TIF_SIGPENDING is set on it
    alone): the sending thread returns 0, and stops later, when the leader starts the group stop."""
    leader, (thread,) = threaded_child(init, 1)
    assert thread.kill(leader.pid, forklab.SIGSTOP) is None
    assert thread.task_struct.pending_call is None  # the call came back before the stop
    assert (leader.state, thread.state) == ("T", "T")
    init.kill(leader.pid, forklab.SIGCONT)
    assert (leader.state, thread.state) == ("R", "R")
    k.check()


@pytest.mark.parametrize("call", ["kill", "tgkill", "pidfd_send_signal", "sigprocmask"])
def test_a_caller_that_stops_on_its_way_out_is_pending(k: forklab.Kernel, init: forklab.TaskHandle, call: str) -> None:
    """A caller that stops itself finishes its call only once continued: its result is a Pending."""
    parent = init.task(init.fork())
    child = parent.task(parent.fork())
    child.setpgid(0, 0)  # a process group with a parent outside it in the session: not orphaned
    stop = 1 << (forklab.SIGTSTP - 1)
    if call == "kill":
        result = child.kill(child.pid, forklab.SIGTSTP)
    elif call == "tgkill":
        result = child.tgkill(child.pid, child.pid, forklab.SIGTSTP)
    elif call == "pidfd_send_signal":
        result = child.pidfd_send_signal(child.pidfd_open(child.pid), forklab.SIGTSTP)
    else:
        child.sigprocmask(forklab.SIG_BLOCK, stop)
        init.kill(child.pid, forklab.SIGTSTP)
        result = child.sigprocmask(forklab.SIG_UNBLOCK, stop)
    assert isinstance(result, forklab.Pending) and not result.done
    assert child.state == "T"
    init.kill(child.pid, forklab.SIGCONT)
    assert result.done and result.result() == (stop if call == "sigprocmask" else None)
    k.check()


def test_a_waiter_wakes_only_for_a_child_it_waits_for(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """wait4(0) asleep while its only child moved to another process group: that child's exit
    does not wake it (child_wait_callback), so it sleeps on rather than fail with ECHILD."""
    parent = init.task(init.fork())
    child = parent.task(parent.fork())
    waiting = parent.wait4(0, forklab.__WALL)
    assert isinstance(waiting, forklab.Pending)
    child.setpgid(0, 0)
    child.exit(0)
    assert not waiting.done and parent.state == "S"
    init.kill(parent.pid, SIGTERM)
    assert init.wait4(parent.pid) == (parent.pid, SIGTERM)
    k.check()


def test_a_zombie_keeps_no_private_signals(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Signals pending for a thread that dies are gone from its SigPnd; its process's ShdPnd stays."""
    child = init.task(init.fork())
    child.sigprocmask(forklab.SIG_BLOCK, 1 << (forklab.SIGUSR2 - 1))
    init.tgkill(child.pid, child.pid, forklab.SIGUSR2)
    init.kill(child.pid, forklab.SIGUSR2)
    init.tgkill(child.pid, child.pid, SIGUSR1)
    assert child.state == "Z"
    assert (child.status()["SigPnd"], child.status()["ShdPnd"]) == ("0" * 16, "0000000000000800")


def test_ptrace_kill_is_ignored_by_a_namespace_init_it_sees(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """PTRACE_KILL sends SIGKILL as the tracer (SEND_SIG_NOINFO), not as the kernel: a pid
    namespace's init that the tracer can see ignores it, as the host's does."""
    outside = init.task(init.fork())
    ns_init = outside.task(outside.clone(forklab.CLONE_NEWPID | SIGCHLD))
    tracer = ns_init.task(ns_init.fork())
    tracer.ptrace(forklab.PTRACE_SEIZE, 1)
    tracer.ptrace(forklab.PTRACE_KILL, 1)
    assert ns_init.alive and ns_init.state == "R"
    k.check()


def test_a_stopped_namespace_init_stays_unkillable(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A group stop changes only the stop flags: a pid namespace's init, stopped from its parent
    namespace, still drops the job-control signals it has no handler for."""
    outside = init.task(init.fork())
    ns_init = outside.task(outside.clone(forklab.CLONE_NEWPID | SIGCHLD))
    outside.kill(ns_init.pid_in(outside), forklab.SIGSTOP)
    assert ns_init.state == "T"
    outside.kill(ns_init.pid_in(outside), forklab.SIGTSTP)
    assert ns_init.status()["ShdPnd"] == "0" * 16
    k.check()


def test_seizing_a_stopped_task_waits_for_its_trap(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """PTRACE_SEIZE of a stopped task returns once the tracee has re-trapped (JOBCTL_TRAPPING):
    a tracer that is itself traced then has the SIGCHLD of that trap, and stops for its own
    tracer before it returns, as on the host."""
    tracer = init.task(init.fork())
    child = tracer.task(tracer.fork())
    tracer.kill(child.pid, forklab.SIGSTOP)
    assert tracer.wait4(child.pid, forklab.WUNTRACED)[0] == child.pid  # type: ignore[index]
    assert tracer.ptrace(forklab.PTRACE_SEIZE, child.pid) == 0
    assert child.state == "t" and tracer.state == "R"
    other = init.task(init.fork())
    grandchild = other.task(other.fork())
    other.kill(grandchild.pid, forklab.SIGSTOP)
    init.ptrace(forklab.PTRACE_SEIZE, other.pid)
    result = other.ptrace(forklab.PTRACE_SEIZE, grandchild.pid)
    assert isinstance(result, forklab.Pending) and other.state == "t"
    init.ptrace(forklab.PTRACE_CONT, other.pid)
    assert result.done and result.result() == 0
    k.check()


def test_a_proc_file_follows_its_pid_through_an_exec_by_a_thread(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A /proc file names a struct pid: once a thread execs and takes the leader's pid over, the
    leader's open comm file reads the new program's name (the host's did)."""
    leader, (thread,) = threaded_child(init, 1)
    fd = leader.open("/proc/self/comm", forklab.O_RDONLY)
    thread.execve("/bin/sh", ["sh"])
    assert thread.read(fd, 8) == b"sh\n"  # the files are shared: the same open file
    k.check()


def test_an_exit_that_orphans_a_stopped_group_sends_it_sighup_and_sigcont(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    """POSIX 3.2.2.2, as the host did it: a process group whose last parent in another group of
    the session exits, and which has a stopped member, gets SIGHUP then SIGCONT (the stopped
    member wakes and dies of the SIGHUP)."""
    session = init.task(init.fork())
    session.setsid()
    middle = session.task(session.fork())
    stopped, running = (middle.task(middle.fork()) for _ in range(2))
    middle.setpgid(0, 0)  # the children's group keeps a parent outside it: middle
    session.kill(stopped.pid_in(session), forklab.SIGSTOP)
    assert stopped.state == "T"
    middle.exit_group(1)  # their group is orphaned now (their new parent, init, is another session's)
    assert (stopped.state, running.state) == ("Z", "Z")
    assert running.status()["ShdPnd"] == "0000000000000001"  # died of SIGHUP, SIGCONT came too late
    k.check()


def test_an_exit_that_orphans_a_group_without_stopped_jobs_sends_nothing(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    session = init.task(init.fork())
    session.setsid()
    middle = session.task(session.fork())
    child = middle.task(middle.fork())
    middle.setpgid(0, 0)
    middle.exit_group(1)
    assert child.state == "R" and child.status()["ShdPnd"] == "0" * 16
    k.check()


def test_a_zombie_thread_signalled_alone_keeps_nothing(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """tgkill to a leader that has exited while its threads live returns 0 and queues nothing."""
    leader, (thread,) = threaded_child(init, 1)
    leader.exit(64)
    for sig in (forklab.SIGTSTP, SIGUSR1):
        init.tgkill(leader.pid, leader.pid, sig)
    assert leader.state == "Z" and leader.status()["SigPnd"] == "0" * 16
    assert thread.state == "R" and thread.status()["SigPnd"] == "0" * 16
    k.check()


def test_a_dying_namespace_init_releases_its_dead_tracees_before_it_waits(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    """A pid namespace's init that traces a zombie child and ignores its children (SA_NOCLDWAIT)
    releases it when it lets it go at exit, before it waits for the namespace to empty: its exit
    does not wait for ever (find_child_reaper releases the dead list first)."""
    outside = init.task(init.fork())
    ns_init = outside.task(outside.clone(forklab.CLONE_NEWPID | SIGCHLD))
    child = ns_init.task(ns_init.fork())
    ns_init.ptrace(forklab.PTRACE_SEIZE, child.pid_in(ns_init))
    ns_init.sigaction(SIGCHLD, 0, forklab.SA_NOCLDWAIT)
    child.exit(3)
    assert child.state == "Z"
    nr = ns_init.pid_in(outside)
    assert ns_init.exit(0) is None  # gone at once
    assert outside.wait4(nr) == (nr, 0)
    k.check()


def test_process_group_zero_never_reaches_the_idle_task(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """init_task points at init_struct_pid but is on none of its lists: when init's process group
    (pid 0's) is orphaned with a stopped job, SIGHUP and SIGCONT reach its members, never swapper."""
    middle = init.task(init.fork())
    child = middle.task(middle.fork())
    middle.setpgid(0, 0)
    middle.kill(child.pid_in(middle), forklab.SIGSTOP)
    middle.exit(0)
    assert child.state == "Z"  # SIGHUP, then SIGCONT woke it to die of it
    assert k.machine.init_task.files is not None and k.machine.init_task.state == 0
    k.check()
