"""forklab demo, run as a user runs it: through the console script."""

from __future__ import annotations

from tests.cli.conftest import run_forklab as forklab


def test_demo_tells_the_story() -> None:
    result = forklab("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "init 1" in out and "kthreadd 2" in out and "sh 3" in out
    assert "[2 threads]" in out
    assert "EINVAL: copy_process: CLONE_SIGHAND requires CLONE_VM" in out
    assert "shares with its parent" in out
    assert "clone_flags=3d0f00" in out  # the pthread_create flags, as tracefs prints them
    assert "|  copy_process() {" in out and "|    dup_task_struct();" in out  # the fork's function graph
    assert "\x1b[" not in out  # plain text when not a terminal


def test_demo_on_another_kernel_version() -> None:
    result = forklab("demo", "--kernel", "6.6")
    assert result.returncode == 0, result.stderr
    assert "Linux 6.6 booted" in result.stdout


def test_bad_input_is_a_one_line_error() -> None:
    result = forklab("demo", "--kernel", "2.4")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Invalid value for '--kernel'" in result.stderr


def test_help() -> None:
    result = forklab("--help")
    assert result.returncode == 0 and "demo" in result.stdout
