"""forklab run and forklab explain, through the console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from forklab.diff.campaign import BUILTIN

from .conftest import Forklab, assert_one_line_error

SCRIPT = """\
import forklab
k = forklab.boot()
init = k.task(1)
pid = init.fork()
print("forked", pid)
k.task(pid).exit(3)
init.wait4(pid, 0)
victim = init.fork()
init.kill(victim, forklab.SIGKILL)
init.wait4(victim, 0)
"""


def row(output: str, label: str) -> str:
    """The table row that starts with ``label``, its cells split out."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells[0] == label:
            return " ".join(cells[1:])
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_run_a_sequence_file(forklab: Forklab) -> None:
    result = forklab("run", str(BUILTIN / "05-vfork.forklab"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "t1 = t0.vfork() = 2 <the caller sleeps until the child execs or exits>"
    assert "<... t1 = t0.vfork() resumed> = 2" in lines
    assert "t0.wait4(t2, 0) = (3, 1024)  exited 4" in lines
    assert lines[-1] == "Linux 6.18 model: invariants hold"


def test_run_a_script_on_another_kernel(forklab: Forklab, tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(SCRIPT)
    result = forklab("run", str(tmp_path / "s.py"), "--kernel", "6.6")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["[pid 1] fork() = 3", "forked 3", "[pid 3] exit(3) = ? <the task is gone>",
                         "[pid 1] wait4(3, 0) = (3, 768)  exited 3"]  # fmt: skip
    assert "[pid 1] wait4(4, 0) = (4, 9)  killed by SIGKILL" in lines
    assert lines[-1] == "Linux 6.6 model: invariants hold"


def test_run_shows_a_refused_call_with_its_check(forklab: Forklab, tmp_path: Path) -> None:
    (tmp_path / "s.forklab").write_text("t0.clone(CLONE_THREAD | SIGCHLD)\n")
    result = forklab("run", str(tmp_path / "s.forklab"))
    assert result.returncode == 0, result.stderr
    assert "= -1 EINVAL (copy_process: CLONE_THREAD requires CLONE_SIGHAND)" in result.stdout
    assert "\x1b[" not in result.stdout  # plain text when not a terminal


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.py", "import forklab\nk = forklab.boot(\n", "s.py:2: syntax error"),
        ("s.forklab", "t1 = t0.fork()\nt1.frok()\n", "s.forklab:2: unknown call 'frok'"),
        ("s.py", "import forklab\nforklab.boot().task(1).clone(forklab.CLONE_VM | forklab.CLONE_THREAD)\n",
         "s.py:2: SyscallError: [Errno 22] Invalid argument [EINVAL] (copy_process: CLONE_THREAD requires"),
    ],
)  # fmt: skip
def test_run_a_broken_scenario(forklab: Forklab, tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    assert_one_line_error(forklab("run", str(tmp_path / name)), 1, f"{tmp_path}/{message}")


def test_run_a_missing_file(forklab: Forklab, tmp_path: Path) -> None:
    assert_one_line_error(forklab("run", str(tmp_path / "nothing.py")), 2, "does not exist")


def test_explain_a_refused_flag_word(forklab: Forklab) -> None:
    result = forklab("explain", "CLONE_SIGHAND")
    assert result.returncode == 0, result.stderr
    assert "refused: EINVAL (Invalid argument)" in result.stdout
    assert "check:   copy_process: CLONE_SIGHAND requires CLONE_VM" in result.stdout


def test_explain_a_number_as_a_thread(forklab: Forklab) -> None:
    result = forklab("explain", "0x3d0f00")  # glibc's pthread_create
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "CLONE_THREAD" in out and "CLONE_CHILD_CLEARTID" in out
    assert "a thread of the caller's process" in out
    for label in ("address space (mm)", "open files (files_struct)", "SysV semaphore undo list"):
        assert row(out, label) == "shared"
    assert row(out, "pid (struct pid)") == "new"


def test_explain_what_a_fork_copies(forklab: Forklab) -> None:
    out = forklab("explain", "SIGCHLD").stdout
    assert "a new process" in out
    assert row(out, "address space (mm)") == "copied"
    assert row(out, "thread group (signal_struct)") == "new"
    assert row(out, "pid namespace") == "shared"


def test_explain_as_an_unprivileged_user(forklab: Forklab) -> None:
    refused = forklab("explain", "CLONE_NEWPID|SIGCHLD", "--as-user").stdout
    assert "refused: EPERM" in refused and "CAP_SYS_ADMIN" in refused
    accepted = forklab("explain", "CLONE_NEWUSER|CLONE_NEWPID", "--as-user", "--call", "clone3").stdout
    assert "clone3 flags 0x30000000" in accepted
    assert row(accepted, "user namespace") == "new" and row(accepted, "pid namespace") == "new"
    assert row(accepted, "mount namespace") == "shared"


def test_explain_as_init_of_a_pid_namespace_and_from_a_thread(forklab: Forklab) -> None:
    out = forklab("explain", "CLONE_PARENT|SIGCHLD", "--in-new-pidns").stdout
    assert "refused: EINVAL" in out and "CLONE_PARENT from an init" in out
    vfork = forklab("explain", "CLONE_VM|CLONE_VFORK|SIGCHLD", "--thread", "--kernel", "6.1").stdout
    assert "calling from a second thread" in vfork and "Linux 6.1" in vfork
    assert "now in state D" in vfork
    assert row(vfork, "address space (mm)") == "shared" and row(vfork, "open files (files_struct)") == "copied"


@pytest.mark.parametrize(("word", "message"), [("CLONE_BOGUS", "unknown clone flag 'CLONE_BOGUS'"),
                                               ("0xzz", "malformed number '0xzz'"),
                                               ("CLONE_VM||SIGCHLD", "empty name")])  # fmt: skip
def test_explain_bad_flag_words(forklab: Forklab, word: str, message: str) -> None:
    assert_one_line_error(forklab("explain", word), 2, message)
