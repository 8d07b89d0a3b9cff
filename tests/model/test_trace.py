"""Tracepoints: the events of a fork, exec, exit and wait, in tracefs's format and order."""

from __future__ import annotations

import re

import forklab
from forklab import CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, SIGCHLD

LINE = re.compile(r"^ {0,15}\S+-\d+ +\[\d{3}\] [.dNhHsS0-9]{5} +\d+\.\d{6}: (\w+): (.*)$")


def events(k: forklab.Kernel) -> list[tuple[str, str]]:
    lines = [line for line in k.trace_text().splitlines() if not line.startswith("#")]
    parsed = []
    for line in lines:
        match = LINE.match(line)
        assert match, line
        parsed.append((match.group(1), match.group(2)))
    return parsed


def test_fork_exec_exit_wait(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.clone(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, child_tid=init.mmap(4096))
    child = k.task(pid)
    child.execve("/bin/ls", ["ls"])
    child.exit(0)
    init.wait4()
    assert events(k) == [
        ("task_newtask", f"pid={pid} comm=init clone_flags=1200000 oom_score_adj=0"),
        ("sched_process_fork", f"comm=init pid=1 child_comm=init child_pid={pid}"),
        ("sched_wakeup_new", f"comm=init pid={pid} prio=120 target_cpu=001"),
        ("sched_process_exec", f"filename=/bin/ls pid={pid} old_pid={pid}"),
        ("sched_process_exit", f"comm=ls pid={pid} prio=120 group_dead=true"),
        ("sched_process_wait", "comm=init pid=0 prio=120"),
        ("sched_process_free", f"comm=ls pid={pid} prio=120"),
    ]


def test_the_task_column_and_flags(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.fork()
    lines = [line for line in k.trace_text().splitlines() if not line.startswith("#")]
    assert lines[0].startswith("            init-1       [000] ..... ")
    assert " d..2. " in lines[2]  # sched_wakeup_new fires with interrupts off


def test_header_counts_entries(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.fork()
    header = k.trace_text().splitlines()
    assert header[0] == "# tracer: nop"
    assert header[2] == "# entries-in-buffer/entries-written: 3/3   #P:2"


def test_wait_for_a_pid_names_its_global_number(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.fork()
    init.wait4(pid, forklab.WNOHANG)
    assert events(k)[-1] == ("sched_process_wait", f"comm=init pid={pid} prio=120")


def test_exit_of_a_thread_is_not_group_dead(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    from forklab import PTHREAD_FLAGS

    stack = init.mmap(1 << 16)
    tid = init.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=stack, child_tid=stack, tls=stack)
    k.task(tid).exit(0)
    exits = [text for name, text in events(k) if name == "sched_process_exit"]
    assert exits == [f"comm=init pid={tid} prio=120 group_dead=false"]
    newtask = [text for name, text in events(k) if name == "task_newtask"]
    assert newtask == [f"pid={tid} comm=init clone_flags=3d0f00 oom_score_adj=0"]


def test_failed_fork_traces_nothing(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    try:
        init.clone(forklab.CLONE_SIGHAND)
    except OSError:
        pass
    assert events(k) == []


def test_tracing_off_records_nothing() -> None:
    k = forklab.boot(trace=False)
    k.task(1).fork()
    assert events(k) == []


def test_exit_trace_format_before_group_dead_field() -> None:
    k = forklab.boot(version="6.12")
    init = k.task(1)
    k.task(init.fork()).exit(0)
    exits = [text for name, text in events(k) if name == "sched_process_exit"]
    assert exits == ["comm=init pid=3 prio=120"]
