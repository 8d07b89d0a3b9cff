"""What a child shares with its parent, per flag: a change on one side seen (or not) on the other."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLONE_CLEAR_SIGHAND,
    CLONE_FILES,
    CLONE_FS,
    CLONE_IO,
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWTIME,
    CLONE_NEWUTS,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VM,
    O_RDONLY,
    SIG_DFL,
    SIG_IGN,
    SIGCHLD,
    SIGUSR1,
    SIGUSR2,
    THREAD_FLAGS,
)

USER_HANDLER = 0x401000


def child_with(k: forklab.Kernel, init: forklab.TaskHandle, flags: int) -> forklab.TaskHandle:
    return k.task(init.clone(flags | (0 if flags & CLONE_THREAD else SIGCHLD)))


@pytest.mark.parametrize("shared", [False, True])
def test_files(k: forklab.Kernel, init: forklab.TaskHandle, shared: bool) -> None:
    child = child_with(k, init, CLONE_FILES if shared else 0)
    fd = child.open("/dev/null", O_RDONLY)
    assert fd == 3
    if shared:
        init.close(fd)  # the parent sees the child's fd
        assert init.task_struct.files is child.task_struct.files
    else:
        with pytest.raises(OSError) as info:
            init.close(fd)
        assert info.value.errno == forklab.EBADF


def test_files_are_copied_with_their_open_file_descriptions(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Without CLONE_FILES the table is copied, but each fd still names the same open file (offset shared)."""
    init.write_file("/tmp/f", "abcdef")
    fd = init.open("/tmp/f")
    child = child_with(k, init, 0)
    assert child.read(fd, 2) == b"ab"
    assert init.read(fd, 2) == b"cd"
    child.close(fd)
    assert init.read(fd, 2) == b"ef"


@pytest.mark.parametrize("shared", [False, True])
def test_fs_cwd_and_umask(k: forklab.Kernel, init: forklab.TaskHandle, shared: bool) -> None:
    child = child_with(k, init, CLONE_FS if shared else 0)
    child.chdir("/tmp")
    old = child.umask(0o077)
    assert old == 0o022
    assert init.getcwd() == ("/tmp" if shared else "/")
    assert init.umask(0o022) == (0o077 if shared else 0o022)


@pytest.mark.parametrize("shared", [False, True])
def test_signal_handlers(k: forklab.Kernel, init: forklab.TaskHandle, shared: bool) -> None:
    child = child_with(k, init, CLONE_SIGHAND | CLONE_VM if shared else 0)
    child.sigaction(SIGUSR1, USER_HANDLER)
    assert init.sigaction(SIGUSR1, SIG_DFL) == (USER_HANDLER if shared else SIG_DFL)


def test_handlers_are_copied_at_fork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.sigaction(SIGUSR1, USER_HANDLER)
    init.sigaction(SIGUSR2, SIG_IGN)
    child = child_with(k, init, 0)
    assert child.sigaction(SIGUSR1, SIG_DFL) == USER_HANDLER
    assert child.sigaction(SIGUSR2, SIG_DFL) == SIG_IGN


def test_clear_sighand_resets_handlers_but_not_ignored(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.sigaction(SIGUSR1, USER_HANDLER, flags=forklab.SA_RESTART)
    init.sigaction(SIGUSR2, SIG_IGN)
    child = k.task(init.clone3(flags=CLONE_CLEAR_SIGHAND, exit_signal=SIGCHLD))
    status = child.status()
    assert status["SigCgt"] == "0000000000000000"
    assert status["SigIgn"] == f"{1 << (SIGUSR2 - 1):016x}"
    assert child.sigaction(SIGUSR1, SIG_DFL) == SIG_DFL


def test_thread_shares_signal_struct_and_group(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    thread = child_with(k, init, THREAD_FLAGS)
    assert thread.task_struct.signal is init.task_struct.signal
    assert thread.tgid == init.tgid == 1
    assert thread.getpid() == 1 and thread.gettid() == thread.pid
    assert init.status()["Threads"] == "2"
    # Limits live in signal_struct: a thread's setrlimit is the process's.
    thread.setrlimit(forklab.RLIMIT_NOFILE, (100, 4096))
    assert init.getrlimit(forklab.RLIMIT_NOFILE) == (100, 4096)


def test_process_gets_its_own_signal_struct_with_limits_copied(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.setrlimit(forklab.RLIMIT_NOFILE, (200, 4096))
    child = child_with(k, init, 0)
    assert child.getrlimit(forklab.RLIMIT_NOFILE) == (200, 4096)
    child.setrlimit(forklab.RLIMIT_NOFILE, (50, 4096))
    assert init.getrlimit(forklab.RLIMIT_NOFILE) == (200, 4096)


@pytest.mark.parametrize("shared", [False, True])
def test_memory(k: forklab.Kernel, init: forklab.TaskHandle, shared: bool) -> None:
    addr = init.mmap(4096)
    init.poke(addr, b"parent")
    child = child_with(k, init, CLONE_VM if shared else 0)
    assert child.peek(addr, 6) == b"parent"
    child.poke(addr, b"child!")
    assert init.peek(addr, 6) == (b"child!" if shared else b"parent")
    assert (init.task_struct.mm is child.task_struct.mm) == shared


def test_sysvsem_undo_list(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    thread = child_with(k, init, THREAD_FLAGS | CLONE_SYSVSEM)
    undo = init.task_struct.sysvsem
    assert undo is not None and thread.task_struct.sysvsem is undo and undo.refcnt == 2
    assert child_with(k, init, 0).task_struct.sysvsem is None


def test_clone_io_shares_nothing_when_the_parent_has_no_io_context(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = child_with(k, init, CLONE_IO)
    assert child.task_struct.io_context is None


def test_credentials_shared_by_threads_copied_by_processes(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    thread = child_with(k, init, THREAD_FLAGS)
    assert thread.task_struct.cred is init.task_struct.cred
    child = child_with(k, init, 0)
    assert child.task_struct.cred is not init.task_struct.cred
    child.setresuid(1000, 1000, 1000)
    assert init.getuid() == 0 and child.getuid() == 1000


NAMESPACE_LINKS = {
    CLONE_NEWUTS: "uts",
    CLONE_NEWIPC: "ipc",
    CLONE_NEWNS: "mnt",
    CLONE_NEWNET: "net",
    CLONE_NEWCGROUP: "cgroup",
}


@pytest.mark.parametrize("flag", sorted(NAMESPACE_LINKS))
def test_each_namespace_flag_makes_only_its_namespace(k: forklab.Kernel, init: forklab.TaskHandle, flag: int) -> None:
    child = child_with(k, init, flag)
    for other, name in NAMESPACE_LINKS.items():
        ours = init.readlink(f"/proc/self/ns/{name}")
        theirs = child.readlink(f"/proc/self/ns/{name}")
        assert (ours != theirs) == (other == flag), name
    assert init.readlink("/proc/self/ns/pid") == child.readlink("/proc/self/ns/pid")
    assert init.readlink("/proc/self/ns/user") == child.readlink("/proc/self/ns/user")


def test_namespace_links_print_like_the_kernel(init: forklab.TaskHandle) -> None:
    assert init.readlink("/proc/self/ns/uts") == "uts:[4026531838]"
    assert init.readlink("/proc/self/ns/ipc") == "ipc:[4026531839]"
    assert init.readlink("/proc/self/ns/user") == "user:[4026531837]"
    assert init.readlink("/proc/self/ns/pid") == "pid:[4026531836]"
    assert init.readlink("/proc/self/ns/cgroup") == "cgroup:[4026531835]"
    assert init.readlink("/proc/self/ns/time") == "time:[4026531834]"


def test_hostname_is_per_uts_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    same = child_with(k, init, 0)
    own = child_with(k, init, CLONE_NEWUTS)
    own.sethostname("inner")
    assert own.uname()[1] == "inner" and init.uname()[1] == "(none)"
    same.sethostname("outer")
    assert init.uname()[1] == "outer" and own.uname()[1] == "inner"


def test_newtime_enters_the_child_not_the_parent(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone3(flags=CLONE_NEWTIME, exit_signal=SIGCHLD))
    assert child.readlink("/proc/self/ns/time") != init.readlink("/proc/self/ns/time")


def test_unshare_newtime_applies_to_the_next_child(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """unshare(CLONE_NEWTIME) changes time_for_children; a later fork enters it with no
    capability check (copy_namespaces builds a new nsproxy for it)."""
    parent = child_with(k, init, 0)
    before = parent.readlink("/proc/self/ns/time")
    parent.unshare(CLONE_NEWTIME)
    assert parent.readlink("/proc/self/ns/time") == before
    pending = parent.readlink("/proc/self/ns/time_for_children")
    assert pending != before
    parent.setresuid(1000, 1000, 1000)  # no privilege needed to enter it
    child = k.task(parent.fork())
    assert child.readlink("/proc/self/ns/time") == pending
    # A CLONE_VM child stays in the parent's time namespace.
    vm_child = k.task(parent.clone(CLONE_VM | SIGCHLD))
    assert vm_child.readlink("/proc/self/ns/time") == before
