"""Tracepoints recorded for a sandbox's tasks, with pids as the sandbox sees them."""

from __future__ import annotations

import pytest

from forklab.host import HostError, Sandbox, TraceRecord

pytestmark = pytest.mark.host


def _events(records: list[TraceRecord]) -> list[tuple[str, int, dict[str, str]]]:
    return [(r.event, r.pid, r.fields) for r in records]


def test_fork_exit_wait_in_sandbox_pids() -> None:
    with Sandbox(timeout=5.0, trace=True) as sb:
        init = sb.init
        child = init.call("fork").child
        assert child is not None
        child.call("exit", 3)
        assert init.call("wait4", -1, 0).data == (2, 0x300)
        records = sb.trace(wait_free=True)
    host_child = str(child.host_pid)
    events = _events(records)
    assert [e[0] for e in events] == [
        "task_newtask",
        "sched_process_fork",
        "sched_wakeup_new",
        "sched_process_exit",
        "sched_process_wait",
        "sched_process_free",
    ]
    newtask, fork, wakeup, exit_, wait, free = records
    assert (newtask.pid, newtask.fields["pid"], newtask.fields["comm"], newtask.fields["clone_flags"]) == (
        1,
        "2",
        "init",
        "0",
    )
    assert (fork.pid, fork.fields["pid"], fork.fields["child_pid"]) == (1, "1", "2")
    assert (wakeup.pid, wakeup.fields["pid"]) == (1, "2")
    assert (exit_.pid, exit_.fields["pid"], exit_.fields["group_dead"]) == (2, "2", "true")
    assert (wait.pid, wait.fields["pid"]) == (1, "0")
    assert free.fields["pid"] == "2" and free.foreign == {"task"}  # freed from an RCU callback
    assert all(not r.foreign for r in records[:-1])
    assert f"child_pid={host_child}" in fork.raw
    assert [r.timestamp for r in records] == sorted(r.timestamp for r in records)
    assert sb.trace() == records  # kept after the sandbox is gone


def test_exec_and_vfork_are_traced() -> None:
    with Sandbox(timeout=5.0, trace=True) as sb:
        init = sb.init
        child = init.call("vfork").child
        assert child is not None
        child.call("execve", "/bin/ls", ["ls"], [])
        init.result()
        records = sb.trace()
    events = _events(records)
    assert events[0][2]["clone_flags"] == "4100"  # CLONE_VM|CLONE_VFORK; the exit signal is not a flag
    assert ("sched_process_exec", 2, {"filename": "/bin/ls", "pid": "2", "old_pid": "2"}) in events


def test_trace_needs_asking_for() -> None:
    with Sandbox() as sb, pytest.raises(HostError, match="trace=True"):
        sb.trace()
