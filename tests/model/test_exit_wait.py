"""exit, exit_group, zombies, reaping, reparenting and wait4."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    __WALL,
    __WCLONE,
    __WNOTHREAD,
    CLONE_NEWPID,
    ECHILD,
    EINVAL,
    ESRCH,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    SA_NOCLDWAIT,
    SIG_BLOCK,
    SIG_IGN,
    SIGCHLD,
    SIGKILL,
    SIGUSR1,
    SIGUSR2,
    THREAD_FLAGS,
    WNOHANG,
    Pending,
    SyscallError,
    TaskBlocked,
)
from forklab.kernel.signal import SI_USER, SigInfo


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def test_exit_status_encoding(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    for code in (0, 3, 255, 256 + 7):
        pid = init.fork()
        k.task(pid).exit(code)
        assert init.wait4(pid) == (pid, (code & 0xFF) << 8)


def test_zombie_until_reaped(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.exit(1)
    status = child.status()
    assert child.state == "Z" and status["State"] == "Z (zombie)"
    assert "Umask" not in status and status["FDSize"] == "0" and "VmSize" not in status
    assert init.wait4() == (child.pid, 0x100)
    assert not child.alive
    with pytest.raises(forklab.TaskGoneError):
        k.task(child.pid)


def test_reaping_returns_every_count(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    before = k.counts()
    child = k.task(init.fork())
    thread = child.task(child.clone(THREAD_FLAGS))
    child.mmap(1 << 20)
    thread.exit(0)
    child.exit(0)
    init.wait4()
    assert k.counts() == before
    k.check()


def test_exit_group_code_wins(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    thread = child.task(child.clone(THREAD_FLAGS))
    thread.exit_group(9)
    assert not thread.alive and not child.alive
    assert init.wait4(child.pid) == (child.pid, 9 << 8)


def test_last_thread_to_exit_sets_the_status(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """The leader exits first and stays a zombie; the parent hears only when the last thread goes."""
    child = k.task(init.fork())
    thread = child.task(child.clone(THREAD_FLAGS))
    child.exit(1)
    assert child.state == "Z" and thread.alive
    assert init.wait4(child.pid, WNOHANG) == (0, 0)  # a leader with live threads is not reaped
    thread.exit(2)
    assert init.wait4(child.pid) == (child.pid, 2 << 8)
    k.check()


def test_non_leader_thread_is_reaped_at_once(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    thread = k.task(init.clone(THREAD_FLAGS))
    thread.exit(0)
    assert not thread.alive
    assert init.status()["Threads"] == "1"
    assert errno_of(lambda: init.wait4(-1, __WALL | WNOHANG)) == ECHILD


def test_wait_errors(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    assert errno_of(lambda: init.wait4(-1, 0x4000)) == EINVAL
    assert errno_of(lambda: init.wait4(-(1 << 31), 0)) == ESRCH
    assert errno_of(lambda: init.wait4(-1, 0)) == ECHILD
    assert errno_of(lambda: init.wait4(9999, 0)) == ECHILD
    other = k.task(init.fork())
    grandchild = other.fork()
    assert errno_of(lambda: init.wait4(grandchild, 0)) == ECHILD  # not our child
    thread = other.clone(THREAD_FLAGS)
    assert errno_of(lambda: other.wait4(thread, __WALL)) == ECHILD  # a tid is no process


def test_wnohang(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.fork()
    assert init.wait4(pid, WNOHANG) == (0, 0)
    k.task(pid).exit(4)
    assert init.wait4(pid, WNOHANG) == (pid, 4 << 8)


def test_blocking_wait_completes_when_a_child_exits(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.fork()
    pending = init.wait4()
    assert isinstance(pending, Pending) and not pending.done
    assert init.state == "S"
    with pytest.raises(TaskBlocked):
        init.getpid()
    with pytest.raises(TaskBlocked):
        pending.result()
    k.task(pid).exit(6)
    assert pending.done and pending.result() == (pid, 6 << 8)
    assert init.state == "R" and init.getpid() == 1


def test_wait_by_process_group(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    a, b = init.fork(), init.fork()
    k.task(a).exit(1)
    k.task(b).exit(2)
    # Both are in init's process group (0): pid 0 means "my group", -pgid names it.
    assert init.wait4(0)[0] in (a, b)  # type: ignore[index]
    assert errno_of(lambda: init.wait4(-4242, 0)) == ECHILD


def test_wclone_and_wall(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A child whose exit signal is not SIGCHLD is a "clone child": __WCLONE waits for it,
    a plain wait does not; __WALL waits for both."""
    normal = init.fork()
    clone_child = init.clone(SIGUSR1)
    quiet = init.clone(0)
    for pid in (normal, clone_child, quiet):
        k.task(pid).exit(0)
    assert init.wait4(-1, WNOHANG) == (normal, 0)
    assert errno_of(lambda: init.wait4(-1, WNOHANG)) == ECHILD
    assert init.wait4(-1, __WCLONE)[0] in (clone_child, quiet)  # type: ignore[index]
    assert init.wait4(-1, __WALL)[0] in (clone_child, quiet)  # type: ignore[index]


def test_threads_wait_for_each_others_children(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    thread = k.task(init.clone(THREAD_FLAGS))
    pid = thread.fork()
    k.task(pid).exit(0)
    assert errno_of(lambda: init.wait4(-1, __WNOTHREAD)) == ECHILD
    assert init.wait4(-1) == (pid, 0)


def test_ignoring_sigchld_autoreaps(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.sigaction(SIGCHLD, SIG_IGN)
    child = parent.task(parent.fork())
    child.exit(0)
    assert not child.alive
    assert errno_of(lambda: parent.wait4()) == ECHILD


def test_sa_nocldwait_autoreaps_but_still_signals(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.sigaction(SIGCHLD, 0x401000, flags=SA_NOCLDWAIT)
    parent.sigprocmask(SIG_BLOCK, 1 << (SIGCHLD - 1))
    child = parent.task(parent.fork())
    child.exit(0)
    assert not child.alive
    assert int(parent.status()["ShdPnd"], 16) == 1 << (SIGCHLD - 1)


def test_exit_signal_is_sent_to_the_parent(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.sigprocmask(SIG_BLOCK, 1 << (SIGUSR1 - 1))
    child = parent.task(parent.clone(SIGUSR1))
    child.exit(0)
    assert int(parent.status()["ShdPnd"], 16) == 1 << (SIGUSR1 - 1)


def test_exit_signal_becomes_sigchld_after_the_parent_execs(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.sigprocmask(SIG_BLOCK, (1 << (SIGUSR1 - 1)) | (1 << (SIGCHLD - 1)))
    child = parent.task(parent.clone(SIGUSR1))
    parent.execve("/bin/sh", ["sh"])
    child.exit(0)
    assert int(parent.status()["ShdPnd"], 16) == 1 << (SIGCHLD - 1)


def test_exec_makes_a_clone_child_an_ordinary_child(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(0))
    child.execve("/bin/ls", ["ls"])
    assert child.task_struct.exit_signal == SIGCHLD
    child.exit(0)
    assert init.wait4(-1, WNOHANG) == (child.pid, 0)


def test_orphans_go_to_init(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    orphan = parent.task(parent.clone(SIGUSR1))
    zombie = parent.task(parent.fork())
    zombie.exit(5)
    parent.exit(0)
    assert orphan.getppid() == 1
    assert orphan.task_struct.exit_signal == SIGCHLD  # reparent_leader makes it an ordinary child
    reaped = {init.wait4()[0] for _ in range(2)}  # type: ignore[index]
    assert reaped == {parent.pid, zombie.pid}
    k.check()


def test_orphans_go_to_a_live_thread_first(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    thread = parent.task(parent.clone(THREAD_FLAGS))
    child = thread.task(thread.fork())
    thread.exit(0)
    assert child.task_struct.real_parent is parent.task_struct
    assert child.getppid() == parent.getpid()


def test_subreaper_adopts_orphans(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    reaper = k.task(init.fork())
    reaper.prctl(PR_SET_CHILD_SUBREAPER, 1)
    middle = reaper.task(reaper.fork())
    orphan = middle.task(middle.fork())
    middle_pid = middle.pid_in(reaper)
    middle.exit(0)
    assert orphan.getppid() == reaper.getpid()
    assert reaper.wait4(middle_pid) == (middle_pid, 0)


def test_pdeath_signal_fires_when_the_creating_thread_exits(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    thread = parent.task(parent.clone(THREAD_FLAGS))
    child = thread.task(thread.fork())
    child.prctl(PR_SET_PDEATHSIG, SIGKILL)
    child_pid = child.pid_in(parent)
    thread.exit(0)  # the process lives on, but the child's creating thread is gone
    assert child.state == "Z"
    assert parent.wait4() == (child_pid, SIGKILL)


def test_killing_global_init_panics(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    with pytest.raises(forklab.KernelPanic, match="Attempted to kill init"):
        init.exit(1)
    with pytest.raises(forklab.KernelPanic):
        k.task(2).getpid()


def test_a_parent_death_signal_needs_the_dying_parent_s_permission() -> None:
    """forget_original_parent sends it as from the parent (SEND_SIG_NOINFO): a parent that
    dropped to another uid may not signal its root child, so the child lives on."""
    k = forklab.boot()
    init = k.task(1)
    parent = k.task(init.fork())
    child = k.task(parent.fork())
    other = k.task(parent.fork())
    child.prctl(forklab.PR_SET_PDEATHSIG, forklab.SIGUSR1)
    other.setresuid(1000, 1000, 1000)
    other.prctl(forklab.PR_SET_PDEATHSIG, forklab.SIGUSR1)
    parent.setresuid(1000, 1000, 1000)
    parent.exit(0)
    assert child.alive and child.getppid() == 1
    assert not other.alive  # same uid: signalled, and SIGUSR1 kills


def told_of_sigusr1(thread: forklab.TaskHandle) -> None:
    """``thread`` was the one complete_signal() chose for a group SIGUSR1 that it has not taken
    yet: a window the host has only in a race (between the wakeup and its return to user mode)."""
    task = thread.task_struct
    task.signal.shared_pending.signal |= 1 << (SIGUSR1 - 1)
    task.signal.shared_pending.queue.append(SigInfo(SIGUSR1, SI_USER, 1))
    task.tif_sigpending = True


@pytest.mark.parametrize("leaves", ["exit", "sigprocmask"])
def test_a_group_signal_passed_over_wakes_another_thread(
    k: forklab.Kernel, init: forklab.TaskHandle, leaves: str
) -> None:
    # retarget_shared_pending(): the thread told of a group signal exits or blocks it, so a thread
    # that can take it is woken - here one asleep in wait4, which then dies of SIGUSR1's default.
    leader = k.task(init.fork())
    thread = leader.task(leader.clone(THREAD_FLAGS))
    sleeper = leader.task(leader.clone(THREAD_FLAGS))
    leader.sigprocmask(SIG_BLOCK, 1 << (SIGUSR1 - 1))  # not a candidate
    leader.fork()
    asleep = sleeper.wait4(-1, __WALL)
    assert isinstance(asleep, Pending) and sleeper.state == "S"
    told_of_sigusr1(thread)
    if leaves == "exit":
        thread.exit(0)
    else:
        thread.sigprocmask(SIG_BLOCK, 1 << (SIGUSR1 - 1))
    assert init.wait4(leader.pid) == (leader.pid, SIGUSR1)
    k.check()


def test_no_thread_to_take_it_leaves_the_signal_pending(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    leader = k.task(init.fork())
    leader.sigprocmask(SIG_BLOCK, 1 << (SIGUSR1 - 1))
    thread = leader.task(leader.clone(THREAD_FLAGS))
    told_of_sigusr1(thread)
    thread.exit(0)
    assert leader.state == "R" and leader.status()["ShdPnd"] == f"{1 << (SIGUSR1 - 1):016x}"
    assert init.wait4(leader.pid, WNOHANG) == (0, 0)


def test_a_fatal_signal_a_thread_blocks_kills_its_group_but_not_an_init(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    # complete_signal(): queued for the group because the thread it was sent to blocks it, a
    # signal whose default kills takes the whole group down at once - unless the group is an init.
    usr2 = 1 << (SIGUSR2 - 1)
    for flags in (SIGCHLD, CLONE_NEWPID | SIGCHLD):
        leader = k.task(init.clone(flags))
        thread = leader.task(leader.clone(THREAD_FLAGS))
        thread.sigprocmask(SIG_BLOCK, usr2)
        init.kill(thread.pid, SIGUSR2)
        if flags & CLONE_NEWPID:
            assert leader.state == "R" and leader.status()["ShdPnd"] == "0" * 16  # taken and dropped
            init.kill(thread.pid, SIGKILL)  # from the parent namespace: it dies, and so does the group
            assert leader.status()["ShdPnd"] == f"{1 << (SIGKILL - 1):016x}"
            assert init.wait4(leader.pid) == (leader.pid, SIGKILL)
        else:
            assert init.wait4(leader.pid) == (leader.pid, SIGUSR2)
    k.check()
