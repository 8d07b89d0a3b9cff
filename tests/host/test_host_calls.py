"""Every call the puppet makes, at least once, with successes and error returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from forklab.host import CALLS, Sandbox, WaitidInfo
from forklab.uapi import (
    CLONE_NEWUTS,
    E2BIG,
    EBADF,
    ECHILD,
    EFAULT,
    EINVAL,
    ENOENT,
    EPERM,
    ESRCH,
    F_GETFD,
    MADV_DONTNEED,
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    PR_GET_NAME,
    PR_GET_PDEATHSIG,
    PR_SET_NAME,
    PR_SET_PDEATHSIG,
    RLIM_INFINITY,
    RLIMIT_NOFILE,
    SEEK_END,
    SIG_BLOCK,
    SIG_SETMASK,
    SIGKILL,
    SIGUSR1,
    sigmask,
)
from forklab.uapi.wait import P_ALL, WEXITED, WNOHANG

pytestmark = pytest.mark.host

Check = Callable[[Any], bool]


def _any(_: Any) -> bool:
    return True


# (call, arguments, expected ret or a check of it, expected data or a check of it)
CASES: list[tuple[str, tuple[Any, ...], int | Check, Any]] = [
    ("getpid", (), 1, None),
    ("gettid", (), 1, None),
    ("getppid", (), 0, None),
    ("getuid", (), 0, None),
    ("geteuid", (), 0, None),
    ("getgid", (), 0, None),
    ("getegid", (), 0, None),
    ("getresuid", (), 0, (0, 0, 0)),
    ("getresgid", (), 0, (0, 0, 0)),
    ("setresuid", (0, 0, 0), 0, None),
    ("setresuid", (70000, -1, -1), -EINVAL, None),  # unmapped in the sandbox's user namespace
    ("setresgid", (5, 5, 5), 0, None),
    ("setgroups", ([1, 2, 3],), 0, None),
    ("setgroups", ([70000],), -EINVAL, None),
    ("getrlimit", (RLIMIT_NOFILE,), 0, lambda d: d[0] <= d[1]),
    ("setrlimit", (RLIMIT_NOFILE, (64, 64)), 0, None),
    ("setrlimit", (RLIMIT_NOFILE, (64, RLIM_INFINITY)), -EPERM, None),  # no CAP_SYS_RESOURCE in the host's namespace
    ("unshare", (CLONE_NEWUTS,), 0, None),
    ("unshare", (1,), -EINVAL, None),
    ("setpgid", (0, 0), 0, None),
    ("setpgid", (42, 0), -ESRCH, None),
    ("getpgid", (0,), 0, None),  # its group leader is outside the sandbox
    ("getpgid", (42,), -ESRCH, None),
    ("setsid", (), 1, None),
    ("getsid", (0,), 0, None),
    ("getsid", (42,), -ESRCH, None),
    ("open", ("/tmp/file", O_CREAT | O_RDWR), 3, None),
    ("open", ("/nowhere", O_RDONLY), -ENOENT, None),
    ("close", (0,), 0, None),
    ("close", (9,), -EBADF, None),
    ("dup", (1,), 3, None),
    ("dup", (9,), -EBADF, None),
    ("fcntl", (0, F_GETFD), 0, None),
    ("fcntl", (9, F_GETFD), -EBADF, None),
    ("read", (0, 16), 0, b""),
    ("read", (9, 16), -EBADF, None),
    ("write", (1, b"abc"), 3, None),
    ("write", (9, "abc"), -EBADF, None),
    ("lseek", (0, 0, SEEK_END), 0, None),
    ("lseek", (9, 0, SEEK_END), -EBADF, None),
    ("pipe", (), 0, (3, 4)),
    ("chdir", ("/tmp",), 0, None),
    ("chdir", ("/nowhere",), -ENOENT, None),
    ("getcwd", (), 2, "/"),
    ("umask", (0o077,), 0o022, None),
    ("readlink", ("/proc/self/exe",), 10, "/sbin/init"),
    ("readlink", ("/nowhere",), -ENOENT, None),
    ("mount", ("none", "/tmp", "tmpfs"), 0, None),
    ("mount", ("none", "/nowhere", "tmpfs"), -ENOENT, None),
    ("read_file", ("/proc/self/comm",), 5, b"init\n"),
    ("read_file", ("/proc/self/maps",), lambda n: n > 0, lambda d: b"[stack]" in d),
    ("read_file", ("/nowhere",), -ENOENT, None),
    ("write_file", ("/tmp/out", b"data"), 4, None),
    ("write_file", ("/proc/self/nowhere", b"data"), -ENOENT, None),
    ("sigaction", (SIGUSR1, 5), 0, 0),
    ("sigaction", (SIGUSR1, None), 0, 0),
    ("sigaction", (SIGKILL, 1), -EINVAL, None),
    ("sigaction", (65, 0), -EINVAL, None),
    ("sigprocmask", (SIG_BLOCK, sigmask(SIGUSR1)), 0, 0),
    ("sigprocmask", (SIG_SETMASK, None), 0, 0),
    ("sigprocmask", (7, 0), -EINVAL, None),
    ("kill", (1, 0), 0, None),
    ("kill", (42, 0), -ESRCH, None),
    ("tgkill", (1, 1, 0), 0, None),
    ("tgkill", (1, 42, 0), -ESRCH, None),
    ("sethostname", ("box",), 0, None),
    ("sethostname", ("x" * 65,), -EINVAL, None),
    ("uname", (), 0, lambda d: d[0] == "Linux" and d[1] == "forklab" and d[4] == "x86_64"),
    ("mmap", (1 << 16,), lambda a: a > 0, None),
    ("mmap", (0,), -EINVAL, None),
    ("munmap", (1, 4096), -EINVAL, None),
    ("madvise", (1, 4096, MADV_DONTNEED), -EINVAL, None),
    ("peek", (0, 8), -EFAULT, None),
    ("poke", (0, b"x"), -EFAULT, None),
    ("prctl", (PR_GET_NAME,), 0, "init"),
    ("prctl", (PR_SET_NAME, "renamed"), 0, None),
    ("prctl", (PR_SET_PDEATHSIG, SIGKILL), 0, None),
    ("prctl", (PR_GET_PDEATHSIG,), 0, 0),
    ("prctl", (-1,), -EINVAL, None),
    ("wait4", (-1, WNOHANG), -ECHILD, None),
    ("waitid", (P_ALL, 0, WEXITED | WNOHANG), -ECHILD, None),
    ("waitid", (P_ALL, 0, 0), -EINVAL, None),
    ("execve", ("/nowhere", ["x"], []), -ENOENT, None),
    ("execve", ("/tmp", ["x"], []), -13, None),  # EACCES: a directory
    ("clone3_raw", (0, 88), -EFAULT, None),
    ("clone3_raw", (0, 4097), -E2BIG, None),
    ("sched_get_priority_max", (1,), 99, None),
    ("sched_get_priority_min", (4,), -EINVAL, None),
    ("sched_getscheduler", (-1,), -EINVAL, None),
    ("sched_getparam", (999,), -ESRCH, None),
    ("sched_setparam", (999, 0), -ESRCH, None),
    ("sched_setscheduler", (0, 4, 0), -EINVAL, None),
    ("sched_getattr", (0, 47), -EINVAL, None),
    ("sched_setattr", (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 47), -E2BIG, None),
    ("getpriority", (3, 0), -EINVAL, None),
    ("setpriority", (0, 999, 0), -ESRCH, None),
    ("mkdir", ("/tmp/d", 0o700), 0, None),
    ("mkdir", ("/nowhere/d",), -ENOENT, None),
    ("rmdir", ("/tmp/nowhere",), -ENOENT, None),
]

# Calls exercised in scenarios of their own (test_host_clone.py and test_host_trace.py) or in the
# built-in diff scenarios (ptrace, pidfds), which tests/host/test_diff.py runs against the host.
IN_SCENARIOS = {
    "fork", "vfork", "clone", "clone3", "exit", "exit_group", "wait4", "waitid", "execve", "ptrace", "pidfd_open",
    "pidfd_send_signal",
}  # fmt: skip


@pytest.mark.parametrize(("name", "args", "ret", "data"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_call(sb: Sandbox, name: str, args: tuple[Any, ...], ret: int | Check, data: Any) -> None:
    result = sb.init.call(name, *args)
    assert ret(result.ret) if callable(ret) else result.ret == ret, result
    if data is not None:
        assert data(result.data) if callable(data) else result.data == data, result


def test_every_call_is_exercised() -> None:
    assert set(CALLS) - {case[0] for case in CASES} - IN_SCENARIOS == set()


def test_memory_round_trip(sb: Sandbox) -> None:
    init = sb.init
    addr = init.call("mmap", 8192).ret
    assert init.call("poke", addr + 4090, b"across a page").ret == 13
    assert init.call("peek", addr + 4090, 13).data == b"across a page"
    assert init.call("munmap", addr + 4096, 4096).ret == 0
    assert init.call("peek", addr + 4090, 13).ret == 6  # up to the hole, as process_vm_readv does
    assert init.call("madvise", addr, 4096, MADV_DONTNEED).ret == 0
    assert init.call("peek", addr + 4090, 6).data == bytes(6)


def test_files_and_pipes(sb: Sandbox) -> None:
    init = sb.init
    read_end, write_end = init.call("pipe").data
    assert init.call("write", write_end, b"through").ret == 7
    assert init.call("read", read_end, 100).data == b"through"
    assert init.call("write_file", "/tmp/f", "hello").ret == 5
    fd = init.call("open", "/tmp/f", O_RDONLY).ret
    assert init.call("lseek", fd, 1, 0).ret == 1
    assert init.call("read", fd, 3).data == b"ell"
    assert init.call("read_file", "/tmp/f").data == b"hello"
    big = init.call("read_file", "/sbin/init")
    assert big.ret == len(big.data) > 4096 and big.data[:4] == b"\x7fELF"


def test_signal_mask_and_handlers(sb: Sandbox) -> None:
    init = sb.init
    assert init.call("sigprocmask", SIG_BLOCK, sigmask(SIGUSR1)).data == 0
    assert init.call("sigprocmask", SIG_SETMASK, 0).data == sigmask(SIGUSR1)
    assert init.call("sigaction", SIGUSR1, 0xDEADBEEF).data == 0
    assert init.call("sigaction", SIGUSR1, 1).data == 0xDEADBEEF
    assert init.call("sigaction", SIGUSR1, 0).data == 1
    status = sb.status(init)
    assert status["SigCgt"] == "0000000000000000" and status["SigIgn"] == "0000000000000000"


def test_credentials_change(sb: Sandbox) -> None:
    init = sb.init
    assert init.call("setresgid", 10, 11, 12).ret == 0
    assert init.call("setgroups", [4, 5]).ret == 0
    assert init.call("setresuid", 1000, 1001, 1002).ret == 0
    assert init.call("getresuid").data == (1000, 1001, 1002)
    assert init.call("getresgid").data == (10, 11, 12)
    status = sb.status(init)
    assert status["Uid"].split() == ["1000", "1001", "1002", "1001"]
    assert status["Groups"] == "4 5"
    assert status["CapEff"] == "0000000000000000"
    assert init.call("setresuid", 0, 0, 0).ret == -EPERM


def test_waitid_reports_the_child(sb: Sandbox) -> None:
    init = sb.init
    child = init.call("fork").child
    assert child is not None
    child.call("exit_group", 9)
    assert init.call("waitid", P_ALL, 0, WEXITED).data == WaitidInfo(2, 0, 17, 9, 1)
