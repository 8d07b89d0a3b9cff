"""alloc_pid: cyclic numbers, the wrap to RESERVED_PIDS, pid_max, nested namespaces, set_tid."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLONE_NEWPID,
    CLONE_NEWUSER,
    EAGAIN,
    EEXIST,
    EINVAL,
    ENOMEM,
    EPERM,
    O_RDWR,
    SEEK_SET,
    SIGCHLD,
    SyscallError,
)


def errno_of(call: object) -> tuple[int, str]:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno), info.value.reason


def reap(init: forklab.TaskHandle, pid: int) -> None:
    init.task(pid).exit(0)
    assert init.wait4(pid)[0] == pid  # type: ignore[index]


def test_pids_are_cyclic_not_reused_at_once(init: forklab.TaskHandle) -> None:
    first = init.fork()
    assert first == 3
    reap(init, first)
    assert init.fork() == 4  # 3 is free again, but the cursor has moved on


def test_pid_max_wraps_to_reserved_pids(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.write_file("/proc/sys/kernel/pid_max", "400")
    for pid in range(3, 400):
        assert init.fork() == pid
    reap(init, 5)
    reap(init, 350)
    # Past RESERVED_PIDS (300), the search wraps to 300, not to 1: 5 stays unused.
    assert init.fork() == 350
    assert errno_of(init.fork)[0] == EAGAIN
    k.check()


def test_pid_max_limits(init: forklab.TaskHandle) -> None:
    assert init.read_file("/proc/sys/kernel/pid_max") == "32768\n"
    for bad in ("300", "4194305", "abc", "-1"):
        errno, _ = errno_of(lambda bad=bad: init.write_file("/proc/sys/kernel/pid_max", bad))
        assert errno == EINVAL
    init.write_file("/proc/sys/kernel/pid_max", "301")
    init.write_file("/proc/sys/kernel/pid_max", "4194304")


def test_pid_max_default_scales_with_cpus() -> None:
    """pid_max = max(32768, 1024 * cpus), at most PID_MAX_LIMIT."""
    assert forklab.boot(cpus=64).task(1).read_file("/proc/sys/kernel/pid_max") == "65536\n"


def test_exhaustion_leaves_nothing_behind(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.write_file("/proc/sys/kernel/pid_max", "301")
    while True:
        try:
            init.fork()
        except SyscallError as err:
            assert err.errno == EAGAIN and "no free pid" in err.reason
            assert err.unwound_from == "bad_fork_cleanup_thread"
            break
    # 1..300 (pid 0 is never in the idr): 298 children besides init and kthreadd.
    assert k.machine.nr_threads == 300
    k.check()


def test_ns_last_pid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    fd = init.open("/proc/sys/kernel/ns_last_pid", O_RDWR)
    init.write(fd, "1000")
    assert init.fork() == 1001
    init.lseek(fd, 0, SEEK_SET)
    assert init.read(fd, 32) == b"1001\n"
    user = k.task(init.fork())
    user.setresuid(1000, 1000, 1000)
    errno, _ = errno_of(lambda: user.write_file("/proc/sys/kernel/ns_last_pid", "5"))
    assert errno == EPERM


def test_nested_namespaces_number_every_level(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    outer = k.task(init.clone(CLONE_NEWPID | SIGCHLD))
    inner = outer.task(outer.clone(CLONE_NEWPID | SIGCHLD))
    leaf = inner.task(inner.fork())
    pid = leaf.task_struct.thread_pid
    assert pid is not None
    # Global, then the outer namespace (where the inner init took 2), then the inner one.
    assert [nr for nr, _ in pid.numbers] == [leaf.pid, 3, 2]
    assert leaf.getpid() == 2 and leaf.getppid() == 1
    assert inner.getppid() == 0  # its parent lives in an ancestor namespace
    assert k.task(leaf.pid).status()["NSpid"] == f"{leaf.pid}\t3\t2"
    assert leaf.status()["NSpid"] == "2"  # as the inner namespace sees it
    assert outer.task(inner.pid_in(outer)).status()["NSpid"] == "2\t1"


def test_set_tid_in_the_initial_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    assert init.clone3(set_tid=[777], exit_signal=SIGCHLD) == 777
    assert errno_of(lambda: init.clone3(set_tid=[777], exit_signal=SIGCHLD)) == (
        EEXIST,
        "alloc_pid: set_tid 777 is in use (level 0)",
    )
    assert errno_of(lambda: init.clone3(set_tid=[0], exit_signal=SIGCHLD))[0] == EINVAL
    assert errno_of(lambda: init.clone3(set_tid=[32768], exit_signal=SIGCHLD))[0] == EINVAL
    assert init.clone3(set_tid=[32767], exit_signal=SIGCHLD) == 32767


def test_set_tid_for_a_new_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """set_tid[0] is the innermost level; without an init there, only 1 may be asked for."""
    errno, reason = errno_of(lambda: init.clone3(flags=CLONE_NEWPID, set_tid=[5, 900], exit_signal=SIGCHLD))
    assert errno == EINVAL and "no init yet" in reason
    pid = init.clone3(flags=CLONE_NEWPID, set_tid=[1, 900], exit_signal=SIGCHLD)
    assert pid == 900 and k.task(900).getpid() == 1


def test_set_tid_needs_capability(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = k.task(init.fork())
    user.setresuid(1000, 1000, 1000)
    errno, reason = errno_of(lambda: user.clone3(set_tid=[5000], exit_signal=SIGCHLD))
    assert errno == EPERM and "CAP_CHECKPOINT_RESTORE" in reason
    # Owning a new user namespace gives the capability over the pid namespace it owns.
    child = k.task(user.clone3(flags=CLONE_NEWUSER | CLONE_NEWPID, set_tid=[1], exit_signal=SIGCHLD))
    assert child.getpid() == 1


def test_set_tid_checks_each_level(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    ns_init = k.task(init.clone(CLONE_NEWPID | SIGCHLD))
    taken = ns_init.fork()  # pid 2 inside
    assert taken == 2
    # From init's namespace: level 1 asks for 2 (taken there), level 0 for a free number.
    parent = ns_init
    errno, reason = errno_of(lambda: parent.clone3(set_tid=[2, 6000], exit_signal=SIGCHLD))
    assert errno == EEXIST and "level 1" in reason
    assert parent.clone3(set_tid=[3, 6000], exit_signal=SIGCHLD) == 3
    k.check()


def test_per_namespace_pid_max(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    ns_init = k.task(init.clone(CLONE_NEWPID | SIGCHLD))
    assert ns_init.read_file("/proc/sys/kernel/pid_max") == "4194304\n"
    ns_init.write_file("/proc/sys/kernel/pid_max", "301")
    while True:
        try:
            ns_init.fork()
        except SyscallError as err:
            assert err.errno == EAGAIN and "level 1" in err.reason
            break
    assert init.read_file("/proc/sys/kernel/pid_max") == "32768\n"
    assert init.fork() > 0


def test_fork_into_a_dead_namespace_is_enomem(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.unshare(CLONE_NEWPID)
    ns_init = k.task(parent.fork())
    assert ns_init.getpid() == 1
    ns_init.exit(0)
    errno, reason = errno_of(parent.fork)
    assert errno == ENOMEM and "init has exited" in reason
    assert parent.wait4()[0] == ns_init.pid  # type: ignore[index]
    k.check()


def test_init_death_kills_the_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    ns_init = k.task(init.clone(CLONE_NEWPID | SIGCHLD))
    members = [ns_init.task(ns_init.fork()) for _ in range(3)]
    grandchild = members[0].task(members[0].fork())
    ns_init.exit(7)
    assert all(not m.alive for m in members) and not grandchild.alive
    pid, status = init.wait4()  # type: ignore[misc]
    assert (pid, status) == (ns_init.pid, 7 << 8)
    k.check()


def test_first_fork_failing_after_alloc_pid_kills_the_new_namespace(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    """free_pid of the only pid of a namespace that never got an init clears PIDNS_ADDING."""
    parent = k.task(init.fork())
    parent.unshare(CLONE_NEWPID)
    fd = parent.open("/proc/thread-self/fail-nth", O_RDWR)
    # A bad pidfd pointer fails the fork after alloc_pid (bad_fork_put_pidfd).
    errno, _ = errno_of(lambda: parent.clone(forklab.CLONE_PIDFD | SIGCHLD, parent_tid=0x10))
    assert errno == forklab.EFAULT
    errno, _reason = errno_of(parent.fork)
    assert errno == ENOMEM
    parent.close(fd)
    k.check()
