"""unshare(2)'s flag rules, and the rules for writing uid_map, gid_map and setgroups."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLONE_FILES,
    CLONE_FS,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VM,
    EACCES,
    EINVAL,
    EPERM,
    O_RDONLY,
    SIGCHLD,
    THREAD_FLAGS,
    SyscallError,
)


def errno_of(call: object) -> tuple[int, str]:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno), info.value.reason


def test_unshare_unknown_flag(init: forklab.TaskHandle) -> None:
    assert errno_of(lambda: init.unshare(forklab.CLONE_PTRACE))[0] == EINVAL


def test_unshare_thread_sighand_vm_only_when_single(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    for flags in (CLONE_THREAD, CLONE_SIGHAND, CLONE_VM):
        child.unshare(flags)  # nothing shared: a no-op that succeeds
    child.clone(THREAD_FLAGS)
    for flags in (CLONE_THREAD, CLONE_SIGHAND, CLONE_VM, CLONE_NEWUSER):
        errno, reason = errno_of(lambda flags=flags: child.unshare(flags))
        assert errno == EINVAL and "multithreaded" in reason


def test_unshare_vm_with_shared_mm(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_VM | SIGCHLD))
    errno, reason = errno_of(lambda: child.unshare(CLONE_VM))
    assert errno == EINVAL and "address space is shared" in reason


def test_unshare_sighand_shared_without_thread(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_VM | CLONE_SIGHAND | SIGCHLD))
    errno, reason = errno_of(lambda: child.unshare(CLONE_SIGHAND))
    assert errno == EINVAL and "signal handlers are shared" in reason


def test_unshare_files_and_fs(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_FILES | CLONE_FS | SIGCHLD))
    child.unshare(CLONE_FILES | CLONE_FS)
    child.chdir("/tmp")
    fd = child.open("/dev/null", O_RDONLY)
    assert init.getcwd() == "/"
    assert errno_of(lambda: init.close(fd))[0] == forklab.EBADF


def test_unshare_newns_implies_fs(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_FS | SIGCHLD))
    child.unshare(CLONE_NEWNS)
    assert child.task_struct.fs is not init.task_struct.fs
    assert child.readlink("/proc/self/ns/mnt") != init.readlink("/proc/self/ns/mnt")


def test_unshare_ipc_with_sysvsem_is_allowed(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """clone refuses CLONE_NEWIPC|CLONE_SYSVSEM; unshare accepts it (and detaches the undo list)."""
    child = k.task(init.fork())
    child.unshare(CLONE_NEWIPC | CLONE_SYSVSEM)


def test_unshare_needs_cap_sys_admin(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.setresuid(1000, 1000, 1000)
    errno, reason = errno_of(lambda: child.unshare(CLONE_NEWUTS))
    assert errno == EPERM and "CAP_SYS_ADMIN" in reason
    child.unshare(CLONE_NEWUSER | CLONE_NEWUTS)
    child.sethostname("mine")
    assert init.uname()[1] == "(none)"


def test_unshare_newuser_gives_full_caps_as_overflow_uid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.setresuid(1000, 1000, 1000)
    child.prctl(forklab.PR_SET_DUMPABLE, 1)  # its ids changed: dumpable again, its /proc files its own
    child.unshare(CLONE_NEWUSER)
    status = child.status()
    assert child.getuid() == 65534 and status["CapEff"] == "000001ffffffffff"
    # A process may map just its own uid; for gids, setgroups must be denied first.
    child.write_file("/proc/self/uid_map", "0 1000 1")
    assert child.getuid() == 0
    errno, _ = errno_of(lambda: child.write_file("/proc/self/gid_map", "0 0 1"))
    assert errno == EPERM
    child.write_file("/proc/self/setgroups", "deny")
    errno, _ = errno_of(lambda: child.write_file("/proc/self/gid_map", "0 1 1"))
    assert errno == EPERM  # gid 1 is not the writer's own egid (0)
    child.write_file("/proc/self/gid_map", "0 0 1")


def test_unshare_newpid_affects_only_children(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.unshare(CLONE_NEWPID)
    assert child.getpid() == child.pid
    assert child.readlink("/proc/self/ns/pid") != child.readlink("/proc/self/ns/pid_for_children")
    assert k.task(child.fork()).getpid() == 1


def test_map_write_rules(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    path = f"/proc/{child.pid}/uid_map"
    for bad in ("0 0", "0 0 0", "4294967295 0 1", "0 0 1\n1 0 1", "0 0 1 junk", ""):
        errno, _ = errno_of(lambda bad=bad: init.write_file(path, bad))
        assert errno == EINVAL, bad
    init.write_file(path, "0 1000 10\n10 5000 5\n")
    assert init.read_file(path) == "         0       1000         10\n        10       5000          5\n"
    errno, reason = errno_of(lambda: init.write_file(path, "0 0 1"))
    assert errno == EPERM and "already written" in reason
    errno, _ = errno_of(lambda: init.write_file("/proc/1/uid_map", "0 0 1"))
    assert errno == EPERM  # the initial namespace's map is fixed


def test_unprivileged_cannot_map_other_ids(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    user = k.task(init.fork())
    user.setresuid(1000, 1000, 1000)
    user.prctl(forklab.PR_SET_DUMPABLE, 1)  # else its child's /proc files stay root's
    child = user.task(user.clone(CLONE_NEWUSER | SIGCHLD))
    errno, _ = errno_of(lambda: user.write_file(f"/proc/{child.pid_in(user)}/uid_map", "0 0 1"))
    assert errno == EPERM
    user.write_file(f"/proc/{child.pid_in(user)}/uid_map", "0 1000 1")
    assert child.getuid() == 0


def test_setgroups_rules(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    base = f"/proc/{child.pid}"
    assert init.read_file(f"{base}/setgroups") == "allow\n"
    init.write_file(f"{base}/gid_map", "0 0 1")
    errno, _ = errno_of(lambda: init.write_file(f"{base}/setgroups", "deny"))
    assert errno == EPERM  # too late: the gid map exists
    errno, _ = errno_of(lambda: init.write_file(f"{base}/setgroups", "maybe"))
    assert errno == EINVAL


def test_setgroups_in_a_user_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    init.write_file(f"/proc/{child.pid}/setgroups", "deny")
    init.write_file(f"/proc/{child.pid}/uid_map", "0 0 1")
    init.write_file(f"/proc/{child.pid}/gid_map", "0 0 1")
    errno, _ = errno_of(lambda: child.setgroups([0]))
    assert errno == EPERM
    init.setgroups([10, 4])
    assert init.status()["Groups"] == "4 10 "


def test_sysctl_write_needs_global_root(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    init.write_file(f"/proc/{child.pid}/uid_map", "0 100000 1")
    child.setresuid(0, 0, 0)
    errno, _ = errno_of(lambda: child.write_file("/proc/sys/kernel/threads-max", "10"))
    assert errno == EACCES


@pytest.mark.parametrize(("version", "moved"), [("6.18", False), ("6.12", True)])
def test_failed_unshare_and_the_callers_root(version: str, moved: bool) -> None:
    """unshare(CLONE_NEWNS|CLONE_NEWPID) failing at the pid namespace (a second pending one).
    With the 2026 unshare_fs() fix (in the host's 6.18.44) a new mount namespace always gets a
    fresh fs_struct, so the caller's root stays where it was and it may then make a user
    namespace; before, copy_mnt_ns() had moved the live fs_struct, leaving the caller
    "chrooted" (EPERM for CLONE_NEWUSER)."""
    k = forklab.boot(version=version)
    init = k.task(1)
    child = init.task(init.fork())
    child.unshare(forklab.CLONE_NEWPID)
    fs_structs = k.counts()["slab:fs_cache"]
    with pytest.raises(forklab.SyscallError) as info:
        child.unshare(forklab.CLONE_NEWNS | forklab.CLONE_NEWPID)
    assert info.value.errno == forklab.EINVAL
    assert k.counts()["slab:fs_cache"] == fs_structs
    if moved:
        with pytest.raises(forklab.SyscallError) as info:
            child.unshare(forklab.CLONE_NEWUSER)
        assert info.value.errno == forklab.EPERM
    else:
        child.unshare(forklab.CLONE_NEWUSER)
    child.unshare(forklab.CLONE_NEWNS)  # succeeds: the old fs_struct is freed, the copy installed
    assert k.counts()["slab:fs_cache"] == fs_structs
    k.check()
