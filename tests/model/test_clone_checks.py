"""Every check on the clone path, with its errno and its place in the order.

The message of each error names the check that refused (``copy_process: ...``), so where
several checks give the same errno the tests still see which one fired first.
"""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLONE_CLEAR_SIGHAND,
    CLONE_DETACHED,
    CLONE_FILES,
    CLONE_FS,
    CLONE_INTO_CGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_PARENT,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SETTLS,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VM,
    E2BIG,
    EAGAIN,
    EFAULT,
    EINVAL,
    ENOSPC,
    EPERM,
    SIGCHLD,
    THREAD_FLAGS,
    SyscallError,
)
from forklab.uapi.sched import CLONE_ARGS_FIELDS


def refused(call: object, errno: int, check: str) -> SyscallError:
    """Run ``call``; it must fail with ``errno`` and a message naming ``check``."""
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    assert info.value.errno == errno, info.value
    assert check in info.value.reason, info.value.reason
    return info.value


def unprivileged(k: forklab.Kernel, init: forklab.TaskHandle, uid: int = 1000) -> forklab.TaskHandle:
    """A child of init that has dropped to an ordinary uid (and so lost every capability)."""
    child = k.task(init.fork())
    child.setresgid(uid, uid, uid)
    child.setresuid(uid, uid, uid)
    assert child.status()["CapEff"] == "0000000000000000"
    return child


# ---- copy_process's flag checks, in order -------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "check"),
    [
        (CLONE_NEWNS | CLONE_FS, "CLONE_NEWNS with CLONE_FS"),
        (CLONE_NEWUSER | CLONE_FS, "CLONE_NEWUSER with CLONE_FS"),
        (CLONE_THREAD, "CLONE_THREAD requires CLONE_SIGHAND"),
        (CLONE_THREAD | CLONE_VM, "CLONE_THREAD requires CLONE_SIGHAND"),
        (CLONE_SIGHAND, "CLONE_SIGHAND requires CLONE_VM"),
        (CLONE_THREAD | CLONE_SIGHAND, "CLONE_SIGHAND requires CLONE_VM"),
        (THREAD_FLAGS | CLONE_NEWPID, "CLONE_THREAD with CLONE_NEWUSER or CLONE_NEWPID"),
        # Several faults at once: the first check in the kernel's order names the error.
        (CLONE_NEWNS | CLONE_FS | CLONE_THREAD, "CLONE_NEWNS with CLONE_FS"),
        (CLONE_NEWUSER | CLONE_FS | CLONE_SIGHAND, "CLONE_NEWUSER with CLONE_FS"),
    ],
)
def test_flag_combinations(init: forklab.TaskHandle, flags: int, check: str) -> None:
    refused(lambda: init.clone(flags), EINVAL, check)


def test_thread_with_new_user_namespace(init: forklab.TaskHandle) -> None:
    flags = CLONE_VM | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_NEWUSER
    refused(lambda: init.clone(flags), EINVAL, "CLONE_THREAD with CLONE_NEWUSER")


def test_init_cannot_make_a_sibling_but_others_can(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    refused(lambda: init.clone(CLONE_PARENT | SIGCHLD), EINVAL, "CLONE_PARENT from an init")
    child = k.task(init.fork())
    sibling = k.task(child.clone(CLONE_PARENT | SIGCHLD))
    assert sibling.getppid() == 1
    # CLONE_PARENT takes the exit signal of the caller's group leader, not the one asked for.
    assert sibling.task_struct.exit_signal == SIGCHLD
    k.check()


def test_clone_parent_exit_signal_is_the_leaders(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(0x23))  # exit signal 35
    sibling = k.task(child.clone(CLONE_PARENT | SIGCHLD))
    assert sibling.task_struct.exit_signal == 35


def test_pid_namespace_init_cannot_clone_parent(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    ns_init = k.task(init.clone(CLONE_NEWPID | SIGCHLD))
    assert ns_init.getpid() == 1
    refused(lambda: ns_init.clone(CLONE_PARENT | SIGCHLD), EINVAL, "SIGNAL_UNKILLABLE")


def test_thread_after_unshare_newpid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.unshare(CLONE_NEWPID)
    refused(lambda: child.clone(THREAD_FLAGS), EINVAL, "after unshare(CLONE_NEWPID)")
    # fork still works: it makes pid 1 of the new namespace.
    assert k.task(child.fork()).getpid() == 1


def test_pidfd_with_detached(init: forklab.TaskHandle) -> None:
    word = init.mmap(4096)
    refused(lambda: init.clone(CLONE_PIDFD | CLONE_DETACHED | SIGCHLD, parent_tid=word), EINVAL, "CLONE_DETACHED")


def test_pidfd_with_thread_allowed_since_6_9() -> None:
    k = forklab.boot(version="6.18")
    init = k.task(1)
    word = init.mmap(4096)
    stack = init.mmap(1 << 16)
    tid = init.clone3(flags=THREAD_FLAGS | CLONE_PIDFD, pidfd=word, stack=stack, stack_size=1 << 16)
    assert k.task(tid).tgid == 1
    pidfd = init.read_u32(word)
    assert init.fcntl(pidfd, 1) == 1  # F_GETFD: FD_CLOEXEC is set on a pidfd
    old = forklab.boot(version="6.6")
    o = old.task(1)
    word = o.mmap(4096)
    stack = o.mmap(1 << 16)
    refused(lambda: o.clone3(flags=THREAD_FLAGS | CLONE_PIDFD, pidfd=word, stack=stack, stack_size=1 << 16),
            EINVAL, "allowed from 6.9")  # fmt: skip


# ---- kernel_clone ------------------------------------------------------------------------------------


def test_legacy_pidfd_and_parent_settid_share_a_word(init: forklab.TaskHandle) -> None:
    word = init.mmap(4096)
    refused(lambda: init.clone(CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, parent_tid=word), EINVAL, "same word")


def test_clone3_pidfd_and_parent_settid_may_differ(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    page = init.mmap(4096)
    pid = init.clone3(flags=CLONE_PIDFD | CLONE_PARENT_SETTID, pidfd=page, parent_tid=page + 8, exit_signal=SIGCHLD)
    assert init.read_u32(page + 8) == pid
    assert init.read_u32(page) == 3  # the first free fd after the console's 0, 1, 2
    refused(lambda: init.clone3(flags=CLONE_PIDFD | CLONE_PARENT_SETTID, pidfd=page, parent_tid=page,
                                exit_signal=SIGCHLD), EINVAL, "same word")  # fmt: skip


def test_parent_settid_fault_is_ignored(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """put_user of the child's pid happens after the task exists: a bad pointer is ignored."""
    pid = init.clone(CLONE_PARENT_SETTID | SIGCHLD, parent_tid=0x10)
    assert k.task(pid).alive


def test_pidfd_bad_pointer_fails_and_undoes(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    before = k.counts()
    error = refused(lambda: init.clone(CLONE_PIDFD | SIGCHLD, parent_tid=0x10), EFAULT, "uaccess")
    assert error.unwound_from == "bad_fork_put_pidfd"
    assert k.counts() == before
    assert init.task_struct.files.fd.keys() == {0, 1, 2}  # type: ignore[union-attr]
    k.check()


# ---- legacy clone's argument handling -----------------------------------------------------------------


def test_legacy_clone_ignores_the_upper_32_bits(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.clone(CLONE_CLEAR_SIGHAND | (1 << 40) | SIGCHLD)
    child = k.task(pid)
    assert child.task_struct.exit_signal == SIGCHLD


def test_legacy_exit_signal_is_not_checked(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.clone(0xFF)
    child = k.task(pid)
    assert child.task_struct.exit_signal == 255
    child.exit(0)
    # Not a valid signal: nothing is sent, and the child is a "clone child" for wait.
    assert init.status()["ShdPnd"] == "0000000000000000"
    assert init.wait4(pid, forklab.__WCLONE) == (pid, 0)


def test_legacy_newtime_is_an_exit_signal(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """CLONE_NEWTIME (0x80) lies in CSIGNAL: legacy clone reads it as exit signal 128."""
    pid = init.clone(CLONE_NEWTIME)
    child = k.task(pid)
    assert child.task_struct.exit_signal == 0x80
    assert child.readlink("/proc/self/ns/time") == init.readlink("/proc/self/ns/time")


# ---- clone3: reading and validating struct clone_args ----------------------------------------------------


def put_args(init: forklab.TaskHandle, addr: int, **fields: int) -> None:
    for index, name in enumerate(CLONE_ARGS_FIELDS):
        init.write_u64(addr + 8 * index, fields.get(name, 0))


def raw_clone3(init: forklab.TaskHandle, size: int, **fields: int) -> int:
    page = init.mmap(8192)
    put_args(init, page, **fields)
    result = init.syscall("clone3", page, size)
    assert isinstance(result, int)
    return result


def test_clone3_sizes(init: forklab.TaskHandle) -> None:
    assert raw_clone3(init, 4097, exit_signal=SIGCHLD) == -E2BIG
    assert raw_clone3(init, 63, exit_signal=SIGCHLD) == -EINVAL
    assert raw_clone3(init, 64, exit_signal=SIGCHLD) > 0  # VER0
    assert raw_clone3(init, 80, exit_signal=SIGCHLD) > 0  # VER1
    assert raw_clone3(init, 88, exit_signal=SIGCHLD) > 0  # VER2
    assert raw_clone3(init, 4096, exit_signal=SIGCHLD) > 0  # a zero tail up to a page is fine


def test_clone3_nonzero_tail_is_e2big(init: forklab.TaskHandle) -> None:
    page = init.mmap(8192)
    put_args(init, page, exit_signal=SIGCHLD)
    init.write_u64(page + 88, 1)
    assert init.syscall("clone3", page, 96) == -E2BIG


def test_clone3_order_of_size_and_fault(init: forklab.TaskHandle) -> None:
    """The size is checked before the memory is read; the tail is read before the head."""
    assert init.syscall("clone3", 0x10, 4097) == -E2BIG
    assert init.syscall("clone3", 0x10, 10) == -EINVAL
    assert init.syscall("clone3", 0x10, 88) == -EFAULT
    # A struct whose head is unmapped but whose tail is mapped and non-zero: E2BIG wins.
    page = init.mmap(8192)
    init.munmap(page, 4096)
    head = page + 4096 - 88
    init.write_u64(page + 4096, 1)
    assert init.syscall("clone3", head, 96) == -E2BIG
    init.write_u64(page + 4096, 0)
    assert init.syscall("clone3", head, 96) == -EFAULT


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ({"exit_signal": 65}, "exit_signal 65"),
        ({"exit_signal": 1 << 32 | SIGCHLD}, "is not a valid signal"),
        ({"flags": CLONE_INTO_CGROUP, "cgroup": 1 << 31}, "CLONE_INTO_CGROUP"),
        ({"flags": 1 << 34}, "unknown flags"),
        ({"flags": CLONE_DETACHED}, "CLONE_DETACHED"),
        ({"flags": SIGCHLD}, "exit-signal byte"),
        ({"flags": CLONE_SIGHAND | CLONE_VM | CLONE_CLEAR_SIGHAND}, "CLONE_CLEAR_SIGHAND"),
        ({"flags": THREAD_FLAGS, "exit_signal": SIGCHLD}, "exit_signal"),
        ({"flags": CLONE_PARENT, "exit_signal": SIGCHLD}, "exit_signal"),
        ({"stack": 0x10000}, "stack_size 0"),
        ({"stack_size": 0x1000}, "stack_size without a stack"),
        ({"stack": 0x7FFFFFFF0000, "stack_size": 0x100000}, "not in the user address space"),
    ],
)
def test_clone3_argument_checks(init: forklab.TaskHandle, fields: dict[str, int], check: str) -> None:
    refused(lambda: init.clone3(**fields), EINVAL, check)


@pytest.mark.parametrize(
    "fields",
    [
        {"set_tid_size": 33, "set_tid": 0x1000},  # more levels than there can be
        {"set_tid_size": 1},  # a size without an array
        {"set_tid": 0x1000},  # an array without a size
    ],
)
def test_clone3_set_tid_shape(init: forklab.TaskHandle, fields: dict[str, int]) -> None:
    assert raw_clone3(init, 88, exit_signal=SIGCHLD, **fields) == -EINVAL


def test_clone3_set_tid_too_long_for_the_levels(init: forklab.TaskHandle) -> None:
    refused(lambda: init.clone3(exit_signal=SIGCHLD, set_tid=(500, 501)), EINVAL, "more entries than")


def test_clone3_into_cgroup_needs_ver2(init: forklab.TaskHandle) -> None:
    assert raw_clone3(init, 80, flags=CLONE_INTO_CGROUP, cgroup=3, exit_signal=SIGCHLD) == -EINVAL


def test_clone3_set_tid_array_fault(init: forklab.TaskHandle) -> None:
    assert raw_clone3(init, 88, set_tid=0x10, set_tid_size=1, exit_signal=SIGCHLD) == -EFAULT


def test_clone3_newtime_by_version() -> None:
    new = forklab.boot(version="6.18").task(1)
    assert new.clone3(flags=CLONE_NEWTIME, exit_signal=SIGCHLD) > 0
    old = forklab.boot(version="6.1").task(1)
    refused(lambda: old.clone3(flags=CLONE_NEWTIME, exit_signal=SIGCHLD), EINVAL, "exit-signal byte")


def test_clone3_stack_is_passed_as_its_lowest_address(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    stack = init.mmap(1 << 16)
    pid = init.clone3(flags=CLONE_VM, stack=stack, stack_size=1 << 16, exit_signal=SIGCHLD)
    assert k.task(pid).regs()["sp"] == stack + (1 << 16)


def test_clone_with_settls_outside_user_space(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """copy_thread: ARCH_SET_FS refuses a base at or above TASK_SIZE_MAX with EPERM."""
    before = k.counts()
    error = refused(lambda: init.clone(CLONE_SETTLS | SIGCHLD, tls=0x7FFFFFFFF000), EPERM, "CLONE_SETTLS")
    assert error.unwound_from == "bad_fork_cleanup_io"
    assert k.counts() == before
    assert init.clone(CLONE_SETTLS | SIGCHLD, tls=0x7FFFFFFFEFF0) > 0


# ---- accounting: RLIMIT_NPROC, threads-max -----------------------------------------------------------------


def test_rlimit_nproc_refuses_an_ordinary_user(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = unprivileged(k, init)
    user.setrlimit(forklab.RLIMIT_NPROC, (3, 3))
    made = [user.fork(), user.fork()]  # with the caller: 3 tasks of uid 1000
    before = k.counts()
    error = refused(user.fork, EAGAIN, "RLIMIT_NPROC")
    assert error.unwound_from == "bad_fork_cleanup_count"
    assert k.counts() == before
    assert len(made) == 2
    k.check()


def test_rlimit_nproc_counts_threads(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = unprivileged(k, init)
    user.setrlimit(forklab.RLIMIT_NPROC, (2, 2))
    user.clone(THREAD_FLAGS)
    refused(lambda: user.clone(THREAD_FLAGS), EAGAIN, "RLIMIT_NPROC")


def test_root_is_exempt_from_rlimit_nproc(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.setrlimit(forklab.RLIMIT_NPROC, (1, 1))
    assert init.fork() > 0


def test_threads_max_refuses_even_root(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """nr_threads counts every task with a pid (init and kthreadd at boot), not the idle tasks."""
    assert k.machine.nr_threads == 2
    init.write_file("/proc/sys/kernel/threads-max", "2")
    error = refused(init.fork, EAGAIN, "threads-max")
    assert error.unwound_from == "bad_fork_cleanup_count"
    init.write_file("/proc/sys/kernel/threads-max", "3")
    assert init.fork() > 0
    refused(init.fork, EAGAIN, "threads-max")


def test_rlimit_nproc_is_checked_before_threads_max(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = unprivileged(k, init)
    user.setrlimit(forklab.RLIMIT_NPROC, (1, 1))
    init.write_file("/proc/sys/kernel/threads-max", "1")
    refused(user.fork, EAGAIN, "RLIMIT_NPROC")


# ---- namespaces ---------------------------------------------------------------------------------------------


def test_new_namespaces_need_cap_sys_admin(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = unprivileged(k, init)
    refused(lambda: user.clone(CLONE_NEWUTS | SIGCHLD), EPERM, "copy_namespaces")
    # ... unless they come with a new user namespace, which the caller then owns.
    pid = user.clone(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWPID | SIGCHLD)
    assert k.task(pid).getpid() == 1


def test_eperm_comes_before_ipc_with_sysvsem(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = unprivileged(k, init)
    refused(lambda: user.clone(CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD), EPERM, "copy_namespaces")
    refused(lambda: init.clone(CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD), EINVAL, "CLONE_NEWIPC with CLONE_SYSVSEM")


def test_pid_namespaces_nest_32_deep(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    task = init
    for level in range(1, 33):
        task = task.task(task.clone(CLONE_NEWPID | SIGCHLD))
        assert task.task_struct.thread_pid.level == level  # type: ignore[union-attr]
    error = refused(lambda: task.clone(CLONE_NEWPID | SIGCHLD), ENOSPC, "deeper than 32")
    assert error.unwound_from == "bad_fork_cleanup_mm"
    k.check()


def test_user_namespaces_nest_33_deep(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """create_user_ns refuses when the parent's level is above 32: levels 1..33 can exist."""
    task = init
    for level in range(1, 34):
        child = task.task(task.clone(CLONE_NEWUSER | SIGCHLD))
        # Map root so the next creation has a mapped euid.
        task.write_file(f"/proc/{child.pid_in(task)}/uid_map", "0 0 1")
        task.write_file(f"/proc/{child.pid_in(task)}/setgroups", "deny")
        task.write_file(f"/proc/{child.pid_in(task)}/gid_map", "0 0 1")
        assert child.task_struct.cred.user_ns.level == level
        task = child
    error = refused(lambda: task.clone(CLONE_NEWUSER | SIGCHLD), ENOSPC, "deeper than 32")
    assert error.unwound_from == "bad_fork_free"
    k.check()


def test_max_user_namespaces(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.write_file("/proc/sys/user/max_user_namespaces", "1")
    assert init.clone(CLONE_NEWUSER | SIGCHLD) > 0
    refused(lambda: init.clone(CLONE_NEWUSER | SIGCHLD), ENOSPC, "max_user_namespaces")


def test_user_namespace_needs_a_mapped_euid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """In a user namespace whose maps were never written, the creator's euid has no mapping."""
    child = k.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    assert child.getuid() == 65534
    refused(lambda: child.clone(CLONE_NEWUSER | SIGCHLD), EPERM, "no mapping")


def test_newpid_twice_after_unshare(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.unshare(CLONE_NEWPID)
    refused(lambda: child.clone(CLONE_NEWPID | SIGCHLD), EINVAL, "already pending")
