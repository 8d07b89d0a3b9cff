"""forklab demo tells the chain from pid 0 to a shell, then what the shell does, a row a step."""

from __future__ import annotations

from .conftest import Forklab


def story(out: str) -> list[tuple[str, str]]:
    """The story table's rows: (call, what the kernel did), continuation lines dropped."""
    rows = []
    for line in out.splitlines():
        call, bar, how = line.partition("│")
        if bar and call.strip():
            rows.append((call.strip(), how.strip()))
    return rows


def test_the_chain_keeps_its_pid_through_the_execs(forklab: Forklab) -> None:
    rows = story(forklab("demo").stdout)
    assert rows[:6] == [
        ("swapper 0: rest_init()", "kernel_init becomes pid 1, kthreadd pid 2"),
        ("kernel_init 1: execve(/sbin/init)", "now init: user space begins"),
        ("init 1: fork()", "child 3, a copy of init"),
        ("init 3: execve(/sbin/getty)", "now getty, still pid 3"),
        ("getty 3: execve(/bin/login)", "now login, still pid 3"),
        ("login 3: execve(/bin/sh)", "now sh, still pid 3"),
    ]


def test_what_the_shell_does(forklab: Forklab) -> None:
    rows = dict(story(forklab("demo").stdout))
    assert rows["sh 3: fork()"] == "child 4, a copy of sh"
    assert rows["sh 3: pthread_create: clone(0x3d0f00)"].startswith("thread 5 of process 3; the flags:")
    assert rows["sh 3: vfork()"] == "child 6; sh sleeps in state D until it execs"
    assert rows["sh 3: vfork() returns"] == "sh is back in state R"
    assert rows["sh 3: clone(CLONE_SIGHAND)"] == "EINVAL: copy_process: CLONE_SIGHAND requires CLONE_VM"
