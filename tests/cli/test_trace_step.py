"""forklab trace and forklab step, run as a user runs them: through the console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import run_forklab as forklab

SEQUENCE = """\
t1 = t0.fork()
t0.clone(CLONE_SIGHAND | SIGCHLD)
t1.exit(3)
t0.wait4(t1, 0)
"""

SCRIPT = """\
import forklab
k = forklab.boot(version="6.18")
init = k.task(1)
pid = init.fork()
k.task(pid).exit(0)
init.wait4(pid, 0)
"""


@pytest.fixture
def sequence(tmp_path: Path) -> Path:
    path = tmp_path / "fork.forklab"
    path.write_text(SEQUENCE)
    return path


def body(text: str) -> list[str]:
    """The function_graph lines without the header, the CPU and the duration columns."""
    return [line[line.index("|") + 3 :] for line in text.splitlines() if not line.startswith("#") and "|" in line]


def test_graph_nests_copy_process_and_its_steps_in_order(sequence: Path) -> None:
    result = forklab("trace", str(sequence), "--format", "graph")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# tracer: function_graph\n")
    lines = body(result.stdout)
    assert lines[:3] == ["kernel_clone() {", "  copy_process() {", "    dup_task_struct();"]
    steps = [line.strip() for line in lines[: lines.index("  }")] if line.startswith("    ") and line[4] != " "]
    order = ["dup_task_struct();", "sched_fork();", "copy_files() {", "copy_mm() {", "alloc_pid();"]
    assert [step for step in steps if step in order] == order
    assert lines[lines.index("  }") + 1 : lines.index("  }") + 3] == ["  wake_up_new_task();", "}"]
    assert "/*" not in result.stdout


def test_a_refused_clone_leaves_copy_process_at_once(sequence: Path) -> None:
    result = forklab("trace", str(sequence), "--graph-function", "kernel_clone")
    assert result.returncode == 0, result.stderr
    lines = body(result.stdout)
    second = lines.index("kernel_clone() {", 1)
    assert lines[second : second + 3] == ["kernel_clone() {", "  copy_process();", "}"]


def test_perfetto_json_is_balanced_and_in_time_order(sequence: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    result = forklab("trace", str(sequence), "--format", "perfetto", "-o", str(out))
    assert result.returncode == 0, result.stderr
    events = json.loads(out.read_text())["traceEvents"]
    depth: dict[int, int] = {}
    for event in events:
        if event["ph"] in "BE":
            depth[event["tid"]] = depth.get(event["tid"], 0) + (1 if event["ph"] == "B" else -1)
            assert depth[event["tid"]] >= 0
    assert set(depth.values()) == {0}
    times = [event["ts"] for event in events if event["ph"] != "M"]
    assert times == sorted(times)
    assert "sched_process_fork" in {event["name"] for event in events if event["ph"] == "i"}


def test_ftrace_format_of_a_python_script(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(SCRIPT)
    result = forklab("trace", str(script), "--format", "ftrace", "--kernel", "6.6")
    assert result.returncode == 0, result.stderr
    assert "# tracer: function" in result.stdout
    assert "init-1       [000] .....     0.000001: copy_process <-kernel_clone" in result.stdout
    assert "task_newtask: pid=3 comm=init" in result.stdout


def test_step_shows_the_new_task_being_built(sequence: Path) -> None:
    result = forklab(
        "step", str(sequence), "--break", "sched_fork", "-b", "copy_semundo", "-b", "cgroup_can_fork",
        "-b", "ret_from_fork", "--commands", "c,c,p,bt,c,q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stops = result.stdout.split("\nBreakpoint ")[1:]
    names = ["1, sched_fork", "2, copy_semundo", "3, cgroup_can_fork", "4, ret_from_fork"]
    assert [stop.split(" (")[0] for stop in stops] == names
    assert "__state   0x0000 TASK_RUNNING" in stops[0] and "none yet (alloc_pid has not run)" in stops[0]
    assert "__state   0x0800 TASK_NEW" in stops[1] and "shared    mm files fs sighand signal nsproxy" in stops[1]
    assert "pid       5 (2 in its own pid namespace), from alloc_pid" in stops[2]
    assert "#1  copy_process (current=init-4" in stops[2] and "#2  kernel_clone" in stops[2]
    assert "the current task: init-5" in stops[3] and "__state   0x0000 TASK_RUNNING" in stops[3]
    assert result.stdout.rstrip().endswith("quit: the scenario stopped in ret_from_fork")


def test_step_reads_piped_commands_and_steps(sequence: Path) -> None:
    command = [*forklab_command(), "step", str(sequence), "-b", "copy_mm"]
    result = subprocess.run(command, input="s\nx\nn\n\n", capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    stops = [line.split(" (")[0] for line in result.stdout.splitlines() if " at forklab/" in line and "#" not in line]
    assert stops[:4] == ["Breakpoint 1, copy_mm", "dup_mm", "copy_namespaces", "copy_io"]
    assert 'Undefined command: "x".' in result.stdout
    assert "(no more commands: the scenario runs to its end)" in result.stdout
    assert "t0.wait4(t1, 0) = (2, 768)  exited 3" in result.stdout


def forklab_command() -> list[str]:
    return forklab("--version").args[:-1]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["step", "SEQ", "--break", "copy_proces"], "--break copy_proces: not a traced kernel function; did you mean"),
        (["trace", "SEQ", "--format", "xml"], "Invalid value for '--format'"),
        (["trace", "missing.forklab"], "missing.forklab: cannot read it: No such file or directory"),
    ],
)
def test_bad_input_is_one_line(sequence: Path, args: list[str], message: str) -> None:
    result = forklab(*[str(sequence) if arg == "SEQ" else arg for arg in args])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_step_into_a_wait_that_slept(tmp_path: Path) -> None:
    scenario = tmp_path / "wait.forklab"
    scenario.write_text("t1 = t0.fork()\nt0.wait4(-1, 0)\nt1.exit(3)\n")
    result = forklab("step", str(scenario), "-b", "wait_task_zombie", "--commands", "c")
    assert result.returncode == 0, result.stderr
    assert "Breakpoint 1, wait_task_zombie (current=init-4, wo=<WaitOpts>, p=init-5)" in result.stdout
    assert "#4  kernel_wait4 (current=init-4, upid=-1, options=0)" in result.stdout  # back inside the sleeping call
    assert "<... t0.wait4(-1, 0) resumed> = (2, 768)  exited 3" in result.stdout
