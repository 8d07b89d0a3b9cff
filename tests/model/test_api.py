"""The public API's contract: errors, raw calls, blocked tasks, pending results, handles."""

from __future__ import annotations

import pytest

import forklab
from forklab import CLONE_SIGHAND, EINVAL, ENOSYS, SIGCHLD, TaskBlocked


def test_errors_are_oserrors_naming_the_check(init: forklab.TaskHandle) -> None:
    with pytest.raises(OSError) as info:
        init.clone(CLONE_SIGHAND)
    assert info.value.errno == EINVAL
    assert "copy_process: CLONE_SIGHAND requires CLONE_VM" in str(info.value)
    assert "Invalid argument" in str(info.value)


def test_raw_syscalls_return_minus_errno(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    assert init.syscall("clone", CLONE_SIGHAND, 0, 0, 0, 0) == -EINVAL
    assert init.syscall("getpid") == 1
    assert init.syscall("no_such_call") == -ENOSYS
    pid = init.syscall("fork")
    assert isinstance(pid, int) and pid > 0
    word = init.mmap(4096)
    k.task(pid).exit(3)
    assert init.syscall("wait4", -1, word, 0, 0) == pid
    assert init.read_u32(word) == 0x300


def test_raw_strings_and_buffers(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    page = init.mmap(4096)
    init.poke(page, b"/tmp/x\0hello")
    fd = init.syscall("open", page, forklab.O_CREAT | forklab.O_WRONLY, 0o600)
    assert fd == 3
    assert init.syscall("write", fd, page + 7, 5) == 5
    assert init.read_file("/tmp/x") == "hello"
    assert init.syscall("uname", page) == 0
    assert init.peek(page, 5) == b"Linux"
    assert init.syscall("pipe", page) == 0
    assert (init.read_u32(page), init.read_u32(page + 4)) == (4, 5)


def test_raw_execve_reads_argv(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    page = child.mmap(4096)
    child.poke(page, b"/bin/ls\0ls\0/nope\0")
    child.write_u64(page + 64, page + 8)
    child.write_u64(page + 72, 0)
    assert child.syscall("execve", page + 11, 0, 0) == -forklab.ENOENT
    assert child.syscall("execve", page, page + 64, 0) == 0
    assert child.comm == "ls"
    assert child.syscall("execve", page, 0, 0) == -forklab.EFAULT  # the old memory is gone


def test_execve_errors(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    init.write_file("/tmp/script", "#!/bin/sh\n")
    cases = {"/nope": forklab.ENOENT, "/tmp": forklab.EACCES, "/dev/null": forklab.EACCES}
    for path, errno in cases.items():
        with pytest.raises(OSError) as info:
            child.execve(path)
        assert info.value.errno == errno, path
    with pytest.raises(OSError) as info:
        child.execve("/tmp/script")
    assert info.value.errno == forklab.EACCES  # created 0644: no execute bit


def test_vfork_blocks_the_parent_until_exec(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.vfork()
    assert init.state == "D"
    with pytest.raises(TaskBlocked):
        init.fork()
    child = k.task(pid)
    assert child.task_struct.mm is init.task_struct.mm
    child.execve("/bin/ls", ["ls"])
    assert init.state == "R" and init.getpid() == 1
    k.check()


def test_vfork_parent_released_by_exit(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.vfork()
    k.task(pid).exit(0)
    assert init.state == "R"
    assert init.wait4() == (pid, 0)


def test_handles(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.fork()
    child = k.task(pid)
    assert child == init.task(pid) and hash(child) == hash(k.task(pid))
    assert (child.pid, child.tgid, child.comm, child.state) == (pid, pid, "init", "R")
    assert repr(child) == f"<task init pid={pid} state=R>"
    with pytest.raises(forklab.TaskGoneError):
        k.task(12345)
    with pytest.raises(TaskBlocked):
        k.task(2).getpid()  # kthreadd makes no system calls


def test_regs_after_fork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    parent_regs, child_regs = init.regs(), child.regs()
    assert child_regs["ax"] == 0
    assert child_regs["ip"] == parent_regs["ip"] and child_regs["sp"] == parent_regs["sp"]
    assert k.task(2).task_struct.thread.resume == ""  # kthreadd has run past ret_from_fork


def test_counts_come_back(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    before = k.counts()
    pid = init.clone(SIGCHLD)
    assert k.counts() != before
    k.task(pid).exit(0)
    init.wait4()
    assert k.counts() == before


def test_kthread_create(k: forklab.Kernel) -> None:
    worker = k.kthread_create("kworker/0:1")
    assert (worker.comm, worker.state, worker.status()["PPid"]) == ("kworker/0:1", "S", "2")
    assert worker.status()["Kthread"] == "1"
    k.check()
