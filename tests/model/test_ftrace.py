"""The function tracer: what it records, its names per kernel version, and that it is gone when off."""

from __future__ import annotations

import json

import forklab
from forklab import CLONE_SIGHAND
from forklab.kernel import fork, ftrace
from forklab.kernel.ftrace import ENTRY, RETURN, FuncRecord, kernel_name
from forklab.kernel.version import Behaviour, KernelVersion
from forklab.render.ftrace import function_graph, function_trace_text, graph_duration
from forklab.render.perfetto import chrome_trace
from forklab.uapi import errno as E


def fork_exit_wait(k: forklab.Kernel) -> list[FuncRecord]:
    init = k.task(1)
    with ftrace.tracing(k.machine) as tracer:
        k.task(init.fork()).exit(0)
        init.wait4(-1, 0)
    return tracer.records


def calls_within(records: list[FuncRecord], function: str) -> list[str]:
    """The functions entered directly from the first call of ``function``, in order."""
    start = next(i for i, r in enumerate(records) if r.kind == ENTRY and r.name == function)
    depth = records[start].depth
    called = []
    for record in records[start + 1 :]:
        if record.depth == depth:
            break
        if record.kind == ENTRY and record.depth == depth + 1:
            called.append(record.name)
    return called


def test_copy_process_runs_its_steps_in_the_kernels_order(k: forklab.Kernel) -> None:
    records = fork_exit_wait(k)
    assert calls_within(records, "kernel_clone") == ["copy_process", "wake_up_new_task"]
    steps = calls_within(records, "copy_process")
    order = ["dup_task_struct", "sched_fork", "copy_semundo", "copy_files", "copy_fs", "copy_sighand"]
    order += ["copy_signal", "copy_mm", "copy_namespaces", "copy_io", "copy_thread", "alloc_pid", "cgroup_can_fork"]
    assert [step for step in steps if step in order] == order
    assert calls_within(records, "copy_mm") == ["dup_mm"]
    assert calls_within(records, "do_exit")[-1] == "exit_notify"
    assert "release_task" in [r.name for r in records if r.kind == ENTRY]


def test_records_carry_the_task_the_depth_and_virtual_time(k: forklab.Kernel) -> None:
    records = fork_exit_wait(k)
    clone = next(r for r in records if r.name == "kernel_clone")
    assert (clone.pid, clone.comm, clone.depth, clone.parent) == (1, "init", 0, "")
    assert next(r for r in records if r.name == "copy_process").parent == "kernel_clone"
    child = next(r for r in records if r.name == "ret_from_fork")
    assert child.pid == 3 and child.cpu == 1
    times = [r.ts for r in records]
    assert times == sorted(times) and times[0] == clone.ts == k.machine.now - 2000  # a call is 1000 ns
    stack: list[str] = []
    for record in records:
        if record.kind == ENTRY:
            assert record.depth == len(stack)
            stack.append(record.name)
        else:
            assert stack.pop() == record.name
    assert not stack


def test_a_refused_clone_returns_from_copy_process_at_once(k: forklab.Kernel) -> None:
    init = k.task(1)
    with ftrace.tracing(k.machine) as tracer:
        try:
            init.clone(CLONE_SIGHAND)
        except OSError:
            pass
    assert [(r.kind, r.name, r.errno) for r in tracer.records] == [
        (ENTRY, "kernel_clone", 0),
        (ENTRY, "copy_process", 0),
        (RETURN, "copy_process", E.EINVAL),
        (RETURN, "kernel_clone", E.EINVAL),
    ]


def test_off_there_is_no_record_and_no_wrapper(k: forklab.Kernel) -> None:
    records = fork_exit_wait(k)
    assert records
    assert k.machine.ftrace is None
    assert fork.copy_process is ftrace.TRACED["copy_process"]
    assert not hasattr(fork.copy_process, "__wrapped__")
    other = forklab.boot()
    with ftrace.tracing(other.machine) as tracer:
        k.task(1).fork()  # a machine that is not traced records nowhere
        assert hasattr(fork.copy_process, "__wrapped__")
    assert tracer.records == []


def test_function_names_follow_the_kernel_version() -> None:
    def version(*behaviours: Behaviour) -> KernelVersion:
        return KernelVersion("x", (0, 0), frozenset(behaviours))

    assert kernel_name(KernelVersion.of("6.18"), "kernel_clone") == "kernel_clone"
    assert kernel_name(version(Behaviour.DO_FORK_TLS, Behaviour.COPY_THREAD_TLS_FOLDED), "kernel_clone") == "_do_fork"
    assert kernel_name(version(), "kernel_clone") == "do_fork"
    assert kernel_name(version(Behaviour.DO_FORK_TLS), "copy_thread") == "copy_thread_tls"
    assert kernel_name(version(), "copy_thread") == "copy_thread"
    assert kernel_name(version(), "copy_process") == "copy_process"


def test_function_graph_text(k: forklab.Kernel) -> None:
    text = function_graph(fork_exit_wait(k), cpus=2)
    lines = text.splitlines()
    assert lines[2] == "# CPU  DURATION                  FUNCTION CALLS"
    assert lines[4] == " 0)               |  kernel_clone() {"
    assert lines[5] == " 0)               |    copy_process() {"
    assert lines[6] == " 0)   0.000 us    |      dup_task_struct();"
    closing = lines.index(" 0)   0.000 us    |    }")
    assert lines[closing + 1] == " 0)   0.000 us    |    wake_up_new_task();"
    assert " 1)               |  ret_from_fork() {" in lines
    assert "/*" not in text


def test_graph_function_keeps_only_its_subtree(k: forklab.Kernel) -> None:
    lines = function_graph(fork_exit_wait(k), cpus=2, graph_function="copy_process").splitlines()[4:]
    assert lines[0] == " 0)               |  copy_process() {"
    assert lines[-1] == " 0)   0.000 us    |  }"
    assert not any("kernel_clone" in line or "wake_up_new_task" in line for line in lines)


def test_graph_durations_as_the_kernel_prints_them() -> None:
    assert graph_duration(0) == "  0.000 us    |  "
    assert graph_duration(12_345) == "+ 12.345 us   |  "
    assert graph_duration(123_456_789) == "@ 123456.7 us |  "
    assert graph_duration(12_345_678_901) == "$ 12345678 us |  "


def test_function_tracer_text_interleaves_tracepoints(k: forklab.Kernel) -> None:
    records = fork_exit_wait(k)
    lines = function_trace_text(records, k.machine.trace, 2).splitlines()
    assert lines[0] == "# tracer: function"
    body = [line.split(": ", 1)[1] for line in lines if not line.startswith("#")]
    assert body[0] == "kernel_clone"
    assert body[1] == "copy_process <-kernel_clone"
    newtask = next(i for i, text in enumerate(body) if text.startswith("task_newtask:"))
    assert body[newtask - 1] == "cgroup_post_fork <-copy_process"
    assert body[newtask + 2] == "wake_up_new_task <-kernel_clone"
    assert body[newtask + 3].startswith("sched_wakeup_new:")


def test_chrome_trace_json(k: forklab.Kernel) -> None:
    trace = json.loads(json.dumps(chrome_trace(fork_exit_wait(k), k.machine.trace)))
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] in "BE"]
    open_per_thread: dict[int, list[str]] = {}
    for event in slices:
        stack = open_per_thread.setdefault(event["tid"], [])
        if event["ph"] == "B":
            stack.append(event["name"])
        else:
            assert stack.pop() == event["name"]
    assert all(not stack for stack in open_per_thread.values())
    timed = [e["ts"] for e in events if e["ph"] != "M"]
    assert timed == sorted(timed) and timed[0] == 1.0
    assert {"task_newtask", "sched_process_exit"} <= {e["name"] for e in events if e["ph"] == "i"}
    assert {"ph": "M", "name": "thread_name", "pid": 3, "tid": 3, "args": {"name": "init-3"}} in events
