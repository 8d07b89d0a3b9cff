"""The scenario loader: Python scripts and sequence files, their lines, their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from forklab.api import Kernel
from forklab.cli.scenario import ScenarioError, run_scenario

SEQUENCE = """\
# a comment
t1 = t0.fork()
t0.clone(CLONE_SIGHAND | SIGCHLD)
t2 = t0.vfork()
t2.execve('/bin/ls', ['ls'])
t1.exit(3)
t0.wait4(t1, 0)
"""

SCRIPT = """\
import forklab
k = forklab.boot(version="6.18")
init = k.task(1)
pid = init.fork()
print("forked", pid)
k.task(pid).exit(3)
init.wait4(pid, 0)
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_sequence_prints_each_call_and_its_result(tmp_path: Path) -> None:
    run = run_scenario(write(tmp_path, "s.forklab", SEQUENCE))
    assert run.lines == [
        "t1 = t0.fork() = 2",
        "t0.clone(CLONE_SIGHAND | SIGCHLD) = -1 EINVAL (copy_process: CLONE_SIGHAND requires CLONE_VM)",
        "t2 = t0.vfork() = 3 <the caller sleeps until the child execs or exits>",
        "t2.execve('/bin/ls', ['ls']) = 0",
        "<... t2 = t0.vfork() resumed> = 3",
        "t1.exit(3) = ? <the task is gone>",
        "t0.wait4(t1, 0) = (2, 768)  exited 3",
    ]
    assert run.kernels == [run.kernel]
    assert run.names["t2"].comm == "ls"


def test_a_sequence_boots_the_version_asked_for_and_shows_it_set_up(tmp_path: Path) -> None:
    seen: list[int] = []
    run = run_scenario(write(tmp_path, "s.forklab", "t1 = t0.fork()\n"), "6.6", lambda k: seen.append(len(k.tasks())))
    assert run.kernel.version == "6.6"
    assert seen == [len(run.kernel.tasks()) - 1]  # called before the scenario's first call


def test_a_script_is_observed(tmp_path: Path) -> None:
    booted: list[tuple[str, int]] = []

    def on_boot(k: Kernel) -> None:
        booted.append((k.version, len(k.tasks())))

    run = run_scenario(write(tmp_path, "s.py", SCRIPT), "6.1", on_boot)
    assert booted == [("6.1", 2)]  # init and kthreadd: seen before the script's first call
    assert run.kernel.version == "6.1"
    assert run.lines == [
        "[pid 1] fork() = 3",
        "forked 3",
        "[pid 3] exit(3) = ? <the task is gone>",
        "[pid 1] wait4(3, 0) = (3, 768)  exited 3",
    ]


def test_every_kernel_a_script_boots_is_kept(tmp_path: Path) -> None:
    run = run_scenario(
        write(tmp_path, "s.py", "import forklab\nforklab.boot()\nfrom forklab import boot\nboot('6.6')\n")
    )
    assert [k.version for k in run.kernels] == ["6.18", "6.6"]
    assert run.kernel is run.kernels[-1]


def test_a_caught_failure_in_a_script_is_a_line(tmp_path: Path) -> None:
    text = "import forklab\nk = forklab.boot()\ntry:\n    k.task(1).clone(forklab.CLONE_SIGHAND)\n"
    text += "except OSError:\n    pass\n"
    run = run_scenario(write(tmp_path, "s.py", text))
    assert run.lines == ["[pid 1] clone(CLONE_SIGHAND) = -1 EINVAL (copy_process: CLONE_SIGHAND requires CLONE_VM)"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.py", "import forklab\nk = forklab.boot(\n", "s.py:2: syntax error: '(' was never closed"),
        ("s.py", "import forklab\nk = forklab.boot()\nk.task(1).clone(forklab.CLONE_SIGHAND)\n",
         "s.py:3: SyscallError: [Errno 22] Invalid argument [EINVAL] (copy_process: CLONE_SIGHAND requires CLONE_VM)"),
        ("s.py", "x = 1\n", "s.py: the script never booted a kernel (forklab.boot())"),
        ("s.py", "import sys\nsys.exit(4)\n", "s.py: the script exited with status 4"),
        ("s.forklab", "t1 = t0.fork()\nt1.frok()\n", "s.forklab:2: unknown call 'frok' (did you mean fork?)"),
        ("s.forklab", "t1 = t0.fork(\n", "s.forklab:1: not a call"),
        ("s.forklab", "t1 = t0.fork()\nt5.exit(0)\n", "s.forklab:2: 't5' is not a task"),
        ("s.forklab", "t0.fork(1)\n", "s.forklab:1: TypeError: "),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        run_scenario(write(tmp_path, name, text))
    assert str(caught.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nothing\.py: cannot read it: No such file or directory"):
        run_scenario(tmp_path / "nothing.py")


def test_boot_is_restored_after_a_script(tmp_path: Path) -> None:
    import forklab
    import forklab.api
    from forklab.api import TaskHandle

    before = (forklab.boot, forklab.api.boot, TaskHandle.fork)
    with pytest.raises(ScenarioError):
        run_scenario(write(tmp_path, "s.py", "import forklab\nforklab.boot()\nraise ValueError('x')\n"))
    assert (forklab.boot, forklab.api.boot, TaskHandle.fork) == before
