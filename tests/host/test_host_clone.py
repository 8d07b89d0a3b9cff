"""Process creation on the real kernel: fork, vfork, clone, clone3, threads, exec, exit, wait."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forklab.host import HostTask, Sandbox
from forklab.uapi import (
    CLONE_FILES,
    CLONE_PARENT,
    CLONE_SIGHAND,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    E2BIG,
    ECHILD,
    EFAULT,
    EINVAL,
    F_GETFD,
    O_RDONLY,
    PTHREAD_FLAGS,
    SIGCHLD,
    SIGSEGV,
    SIGUSR1,
)
from forklab.uapi.wait import WNOHANG

pytestmark = pytest.mark.host

STACK = 1 << 16


def _child(task: HostTask, name: str, *args: object, **kwargs: object) -> HostTask:
    result = task.call(name, *args, **kwargs)
    assert result.ret > 0 and result.child is not None, result
    return result.child


def _thread(task: HostTask) -> tuple[HostTask, int]:
    """A thread on an mmap'd stack; the address of its tid word."""
    stack = task.call("mmap", STACK).ret
    tid_word = task.call("mmap", 4096).ret
    result = task.call("clone", PTHREAD_FLAGS, stack + STACK, tid_word, tid_word, tid_word + 2048)
    assert result.ret > 0 and result.child is not None, result
    return result.child, tid_word


def test_fork_exit_wait(sb: Sandbox) -> None:
    init = sb.init
    result = init.call("fork")
    assert result.ret == 2 and result.child is not None
    child = result.child
    assert (child.pid, child.call("getpid").ret, child.call("getppid").ret) == (2, 2, 1)
    assert child.call("exit", 3).gone
    assert not child.alive
    assert sb.status(child)["State"].startswith("Z")
    assert init.call("wait4", -1, 0).data == (2, 0x300)
    assert init.call("wait4", -1, WNOHANG).ret == -ECHILD


def test_thread_answers_and_its_tid_word_is_kept(sb: Sandbox) -> None:
    init = sb.init
    thread, tid_word = _thread(init)
    tid = thread.pid
    assert thread.call("gettid").ret == tid
    assert thread.call("getpid").ret == 1
    assert init.call("peek", tid_word, 4).data == tid.to_bytes(4, "little")  # CLONE_PARENT_SETTID
    status = sb.status(thread)
    assert (status["Tgid"], status["Pid"], sb.status(init)["Threads"]) == ("1", str(tid), "2")
    assert thread.call("exit", 0).gone
    assert init.call("peek", tid_word, 4).data == bytes(4)  # CLONE_CHILD_CLEARTID
    assert sb.status(init)["Threads"] == "1"


def test_threads_share_handlers_fork_copies_them_exec_resets_them(sb: Sandbox) -> None:
    init = sb.init
    thread, _ = _thread(init)
    assert thread.call("sigaction", SIGUSR1, 42).ret == 0
    assert init.call("sigaction", SIGUSR1, None).data == 42
    child = _child(init, "fork")
    assert child.call("sigaction", SIGUSR1, None).data == 42
    assert child.call("execve", "/bin/sh", ["sh"], []).ret == 0
    assert child.call("sigaction", SIGUSR1, None).data == 0


def test_vfork_parent_is_pending_until_the_child_execs(sb: Sandbox) -> None:
    init = sb.init
    result = init.call("vfork")
    assert result.pending and result.child is not None
    child = result.child
    assert sb.status(init)["State"].startswith("D")
    assert child.call("getppid").ret == 1
    assert init.pending
    assert child.call("execve", "/bin/ls", ["ls", "-l"], ["PATH=/bin"]).ret == 0
    assert init.result().ret == child.pid
    assert not init.pending
    assert sb.status(child)["Name"] == "ls"
    assert child.call("read_file", "/proc/self/cmdline").data == b"ls\0-l\0"


def test_clone_vfork_without_a_stack_until_exit(sb: Sandbox) -> None:
    init = sb.init
    result = init.call("clone", CLONE_VM | CLONE_VFORK | SIGCHLD)
    assert result.pending and result.child is not None
    assert result.child.call("exit", 4).gone
    assert init.result().ret == result.child.pid
    assert init.call("wait4", -1, 0).data == (result.child.pid, 4 << 8)


def test_copy_on_write_after_fork(sb: Sandbox) -> None:
    init = sb.init
    addr = init.call("mmap", 4096).ret
    init.call("poke", addr, b"parent")
    child = _child(init, "fork")
    assert child.call("peek", addr, 6).data == b"parent"
    assert child.call("poke", addr, b"child!").ret == 6
    assert child.call("peek", addr, 6).data == b"child!"
    assert init.call("peek", addr, 6).data == b"parent"


def test_clone_vm_shares_memory_clone_files_shares_fds(sb: Sandbox) -> None:
    init = sb.init
    addr = init.call("mmap", 4096).ret
    sharer = _child(init, "clone", CLONE_VM | CLONE_FILES | SIGCHLD)
    assert sharer.call("poke", addr, b"seen").ret == 4
    assert init.call("peek", addr, 4).data == b"seen"
    fd = sharer.call("open", "/dev/null", O_RDONLY).ret
    assert fd == 3
    assert init.call("fcntl", fd, F_GETFD).ret == 0


def test_execve_of_ls(sb: Sandbox) -> None:
    child = _child(sb.init, "fork")
    assert child.call("execve", "/bin/ls", ["ls"], []).ret == 0
    status = sb.status(child)
    assert status["Name"] == "ls"
    assert status["FDSize"] == "64"
    assert child.call("getpid").ret == child.pid
    assert child.call("readlink", "/proc/self/exe").data == "/bin/ls"


def test_exec_by_a_thread_takes_the_leaders_pid(sb: Sandbox) -> None:
    leader = _child(sb.init, "fork")
    thread, _ = _thread(leader)
    old_tid = thread.pid
    assert thread.call("execve", "/bin/sh", ["sh"], []).ret == 0
    # de_thread swapped the pids: the exec'ing thread is now 2, the dead leader keeps 3.
    assert (thread.pid, leader.pid, old_tid) == (2, 3, 3)
    assert not leader.alive
    assert thread.call("gettid").ret == 2
    assert sb.status(thread)["Threads"] == "1"
    assert [t.pid for t in sb.tasks()] == [1, 2]


def test_exit_group_from_a_thread_ends_the_group(sb: Sandbox) -> None:
    leader = _child(sb.init, "fork")
    thread, _ = _thread(leader)
    assert thread.call("exit_group", 5).gone
    assert not leader.alive and not thread.alive
    assert sb.init.call("wait4", -1, 0).data == (leader.pid, 5 << 8)


def test_clone_refusals(sb: Sandbox) -> None:
    init = sb.init
    assert init.call("clone", CLONE_SIGHAND).ret == -EINVAL
    assert init.call("clone", CLONE_THREAD | CLONE_SIGHAND).ret == -EINVAL
    assert init.call("clone", CLONE_PARENT | SIGCHLD).ret == -EINVAL  # pid 1 may not make siblings
    assert init.call("clone3_raw", 0, 63).ret == -EINVAL
    assert init.call("clone3_raw", 0, 4097).ret == -E2BIG
    assert init.call("clone3_raw", 8, 88).ret == -EFAULT
    assert init.call("clone3", exit_signal=65).ret == -EINVAL
    assert init.call("clone3", flags=CLONE_THREAD).ret == -EINVAL
    assert sb.tasks() == [init]


def test_clone3_with_set_tid_and_a_struct_in_memory(sb: Sandbox) -> None:
    init = sb.init
    child = _child(init, "clone3", exit_signal=SIGCHLD, set_tid=[50])
    assert child.pid == 50 and child.call("getpid").ret == 50
    addr = init.call("mmap", 4096).ret
    init.call("poke", addr + 32, SIGCHLD.to_bytes(8, "little"))  # exit_signal; the rest stays zero
    # set_tid does not move the allocator's cursor: the next pid is 2, not 51.
    assert _child(init, "clone3_raw", addr, 64).pid == 2


def test_a_child_that_dies_before_it_can_answer(sb: Sandbox) -> None:
    init = sb.init
    result = init.call("clone", CLONE_VM | SIGCHLD, 16)  # a stack it cannot use
    assert result.ret == 2 and result.child is None
    assert init.call("wait4", 2, 0).data == (2, SIGSEGV)


def test_the_host_sees_the_same_tasks(sb: Sandbox) -> None:
    child = _child(sb.init, "fork")
    nspid = [int(p) for p in sb.status(child)["NSpid"].split()]
    host = Path(f"/proc/{child.host_pid}/status").read_text()
    assert f"NSpid:\t{child.host_pid}\t{nspid[0]}" in host
    assert os.path.exists(f"/proc/{child.host_pid}")
