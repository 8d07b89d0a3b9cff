"""Group stop and continue as wait4 and waitid report them; waitid's id types and options;
pidfd_open and pidfd_send_signal."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLD_CONTINUED,
    CLD_EXITED,
    CLD_KILLED,
    CLD_STOPPED,
    EAGAIN,
    EBADF,
    ECHILD,
    EINVAL,
    ENOENT,
    ESRCH,
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    PIDFD_NONBLOCK,
    PIDFD_THREAD,
    SIGCHLD,
    SIGCONT,
    SIGKILL,
    SIGSTOP,
    SIGTERM,
    SIGTSTP,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOWAIT,
    WSTOPPED,
    WUNTRACED,
    SyscallError,
    WaitidInfo,
)
from tests.conftest import threaded_child


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def test_stop_and_continue_are_each_reported_once() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    init.kill(child.pid, SIGSTOP)
    assert child.state == "T"
    assert init.wait4(child.pid, WNOHANG) == (0, 0)  # without WUNTRACED a stop is not news
    assert init.wait4(child.pid, WUNTRACED) == (child.pid, (SIGSTOP << 8) | 0x7F)
    assert init.wait4(child.pid, WUNTRACED | WNOHANG) == (0, 0)
    init.kill(child.pid, SIGCONT)
    assert child.state in "SR"
    assert init.wait4(child.pid, WCONTINUED) == (child.pid, 0xFFFF)
    assert init.wait4(child.pid, WCONTINUED | WNOHANG) == (0, 0)
    k.check()


def test_waitid_siginfo_for_stop_continue_and_exit_and_wnowait_leaves_it() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    init.kill(child.pid, SIGSTOP)
    assert init.waitid(P_PID, child.pid, WSTOPPED | WNOWAIT) == WaitidInfo(child.pid, 0, SIGCHLD, SIGSTOP, CLD_STOPPED)
    assert init.waitid(P_PID, child.pid, WSTOPPED) == WaitidInfo(child.pid, 0, SIGCHLD, SIGSTOP, CLD_STOPPED)
    assert init.waitid(P_PID, child.pid, WSTOPPED | WNOHANG) == WaitidInfo(0, 0, 0, 0, 0)
    init.kill(child.pid, SIGCONT)
    assert init.waitid(P_ALL, 0, WCONTINUED) == WaitidInfo(child.pid, 0, SIGCHLD, SIGCONT, CLD_CONTINUED)
    child.exit(4)
    assert init.waitid(P_PGID, 0, WEXITED | WNOWAIT) == WaitidInfo(child.pid, 0, SIGCHLD, 4, CLD_EXITED)
    assert init.waitid(P_PGID, 0, WEXITED) == WaitidInfo(child.pid, 0, SIGCHLD, 4, CLD_EXITED)
    assert errno_of(lambda: init.waitid(P_ALL, 0, WEXITED)) == ECHILD
    k.check()


def test_waitid_killed_child_and_its_errors() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    init.kill(child.pid, SIGTERM)
    assert init.waitid(P_ALL, 0, WEXITED) == WaitidInfo(child.pid, 0, SIGCHLD, SIGTERM, CLD_KILLED)
    assert errno_of(lambda: init.waitid(P_ALL, 0, WNOHANG)) == EINVAL  # no event asked for
    assert errno_of(lambda: init.waitid(P_ALL, 0, WEXITED | WUNTRACED << 8)) == EINVAL
    assert errno_of(lambda: init.waitid(P_PID, 0, WEXITED)) == EINVAL
    assert errno_of(lambda: init.waitid(P_PGID, -1, WEXITED)) == EINVAL
    assert errno_of(lambda: init.waitid(P_PIDFD, -1, WEXITED)) == EINVAL
    assert errno_of(lambda: init.waitid(9, 0, WEXITED)) == EINVAL
    assert errno_of(lambda: init.waitid(P_PIDFD, 0, WEXITED)) == EBADF  # fd 0 is not a pidfd


def test_a_stop_in_a_group_stops_every_thread_and_the_last_tells_the_parent() -> None:
    k = forklab.boot()
    init = k.task(1)
    leader, (thread,) = threaded_child(init, 1)
    init.kill(leader.pid, SIGSTOP)
    assert (leader.state, thread.state) == ("T", "T")
    assert init.wait4(leader.pid, WUNTRACED)[1] == (SIGSTOP << 8) | 0x7F
    init.kill(leader.pid, SIGCONT)
    assert (leader.state, thread.state) != ("T", "T")
    k.check()


def test_job_control_stops_do_nothing_in_an_orphaned_group_but_sigstop_does() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())  # init's children: their group is orphaned (init does not count)
    init.kill(child.pid, SIGTSTP)
    assert child.state in "SR"
    # In a group of its own, under a parent in another group of the same session, it stops.
    middle = k.task(init.fork())
    grandchild = k.task(middle.fork())
    grandchild.setpgid(0, 0)
    middle.kill(grandchild.pid, SIGTSTP)
    assert grandchild.state == "T"


def test_pidfd_open_and_send_signal() -> None:
    k = forklab.boot()
    init = k.task(1)
    child = k.task(init.fork())
    assert errno_of(lambda: init.pidfd_open(child.pid, 1)) == EINVAL
    assert errno_of(lambda: init.pidfd_open(0)) == EINVAL
    assert errno_of(lambda: init.pidfd_open(4242)) == ESRCH
    fd = init.pidfd_open(child.pid, PIDFD_NONBLOCK)
    assert errno_of(lambda: init.waitid(P_PIDFD, fd, WEXITED)) == EAGAIN  # non-blocking, nothing yet
    assert errno_of(lambda: init.pidfd_send_signal(fd, SIGKILL, 3)) == EINVAL  # two scopes
    assert errno_of(lambda: init.pidfd_send_signal(0, SIGKILL)) == EBADF
    init.pidfd_send_signal(fd, SIGKILL)
    assert init.waitid(P_PIDFD, fd, WEXITED) == WaitidInfo(child.pid, 0, SIGCHLD, SIGKILL, CLD_KILLED)
    assert errno_of(lambda: init.pidfd_send_signal(fd, SIGKILL)) == ESRCH  # reaped
    init.close(fd)
    k.check()


@pytest.mark.parametrize(("version", "errno"), [("6.18", ENOENT), ("6.12", EINVAL)])
def test_pidfd_of_a_thread_needs_pidfd_thread(version: str, errno: int) -> None:
    """Without PIDFD_THREAD a thread is no process: ENOENT since 6.16 (the host 6.18), EINVAL before."""
    k = forklab.boot(version=version)
    init = k.task(1)
    _, (thread,) = threaded_child(init, 1)
    assert errno_of(lambda: init.pidfd_open(thread.pid)) == errno
    fd = init.pidfd_open(thread.pid, PIDFD_THREAD)
    init.pidfd_send_signal(fd, SIGSTOP)
    assert thread.state == "T"


@pytest.mark.parametrize(("version", "errno"), [("6.18", ESRCH), ("6.12", EINVAL)])
def test_pidfd_of_a_reaped_task_whose_pid_lives_on_as_a_group(version: str, errno: int) -> None:
    """The number still names a process group, but no task: ESRCH since 6.16 (the host 6.18),
    with or without PIDFD_THREAD; EINVAL before."""
    k = forklab.boot(version=version)
    init = k.task(1)
    leader = k.task(init.fork())
    leader.setpgid(0, 0)
    leader.fork()  # keeps the group, and so the pid, alive
    leader.exit(0)
    init.wait4(leader.pid)
    for flags in (0, PIDFD_THREAD):
        assert errno_of(lambda: init.pidfd_open(leader.pid, flags)) == errno  # noqa: B023
    k.check()
