"""execve in a multithreaded process: de_thread() kills the other threads, and a thread other
than the leader takes over the leader's pid (fs/exec.c)."""

from __future__ import annotations

import pytest

import forklab
from forklab import __WALL, SIGCHLD, SIGTERM, TaskGoneError
from tests.conftest import threaded_child


def events(k: forklab.Kernel, *names: str) -> list[tuple[str, int, dict[str, object]]]:
    return [(e.name, e.pid, dict(e.fields)) for e in k.trace_events() if e.name in names]


def test_leader_exec_kills_the_other_threads(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    leader, threads = threaded_child(init, 2)
    counts = k.counts()
    k.clear_trace()
    leader.execve("/bin/ls", ["ls"])
    assert not any(t.alive for t in threads)
    assert leader.status()["Threads"] == "1" and leader.comm == "ls"
    exits = events(k, "sched_process_exit", "sched_process_exec")
    # The other threads die first (from the one after the caller, round the list), then the exec.
    assert [(name, pid) for name, pid, _ in exits] == [
        ("sched_process_exit", threads[0].pid),
        ("sched_process_exit", threads[1].pid),
        ("sched_process_exec", leader.pid),
    ]
    assert all(fields.get("group_dead") is False for name, _, fields in exits if name == "sched_process_exit")
    assert k.counts()["nr_threads"] == counts["nr_threads"] - 2
    k.check()


def test_thread_exec_takes_the_leaders_pid(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    leader, threads = threaded_child(init, 2)
    tgid, old_tid = leader.pid, threads[1].pid
    execing = threads[1]
    k.clear_trace()
    execing.execve("/bin/sh", ["sh"])
    assert execing.pid == execing.tgid == tgid and execing.getpid() == execing.gettid() == tgid
    assert not leader.alive and not threads[0].alive
    assert execing.getppid() == 1 and init.task(tgid).task_struct is execing.task_struct
    lines = events(k, "sched_process_exit", "sched_process_exec", "sched_process_free")
    # The leader dies (a zombie, not group dead), the other thread dies and is freed, then the
    # leader is released under the exec'ing thread's old pid, and the exec line names both.
    assert ("sched_process_exit", tgid, {"comm": "init", "pid": tgid, "prio": 120, "group_dead": False}) in lines
    assert lines[-1] == ("sched_process_exec", tgid, {"filename": "/bin/sh", "pid": tgid, "old_pid": old_tid})
    assert ("sched_process_free", old_tid) in [(name, fields["pid"]) for name, _, fields in lines]
    with pytest.raises(TaskGoneError):
        k.task(old_tid)
    k.check()
    execing.exit(3)
    assert init.wait4(tgid) == (tgid, 0x300)
    k.check()


def test_thread_exec_keeps_process_group_session_and_children(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    leader, threads = threaded_child(init, 1)
    leader.setsid()
    child = leader.task(leader.fork())
    tgid = leader.pid
    threads[0].execve("/bin/sh", ["sh"])
    execing = threads[0]
    assert execing.getsid() == execing.getpgid() == tgid
    # The leader's child was handed to the thread that lives on when the leader exited.
    assert child.getppid() == tgid
    child.exit(0)
    assert execing.wait4(-1) == (child.pid, 0)
    k.check()


def test_exec_after_the_leader_exited(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A leader that called exit() alone is a zombie already: the exec takes over at once."""
    leader, threads = threaded_child(init, 1)
    tgid = leader.pid
    leader.exit(0)
    assert leader.state == "Z"
    threads[0].execve("/bin/ls", ["ls"])
    assert threads[0].pid == tgid and threads[0].status()["Threads"] == "1"
    k.check()


def test_parent_hears_nothing_of_the_exec(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """No SIGCHLD and nothing to reap: the process lives on under the same pid."""
    leader, threads = threaded_child(init, 1)
    tgid = leader.pid
    threads[0].execve("/bin/ls", ["ls"])
    assert init.status()["SigPnd"] == "0" * 16
    assert init.wait4(-1, forklab.WNOHANG | __WALL) == (0, 0)
    init.kill(tgid, SIGTERM)
    assert init.wait4(tgid) == (tgid, SIGTERM)


def test_exec_in_a_clone_thread_group_resets_exit_signal(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    _, threads = threaded_child(init, 1)
    assert threads[0].task_struct.exit_signal == -1  # a thread: nobody is told of its exit
    threads[0].execve("/bin/ls", ["ls"])
    assert threads[0].task_struct.exit_signal == SIGCHLD
