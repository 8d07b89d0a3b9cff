"""Wait statuses and waitid siginfo, read out as a person says them."""

from __future__ import annotations

import pytest

from forklab.render.results import describe_result, wait_status
from forklab.uapi.wait import CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, CLD_TRAPPED, WaitidInfo


@pytest.mark.parametrize(
    ("status", "reading"),
    [
        (0, "exited 0"),
        (3 << 8, "exited 3"),
        (9, "killed by SIGKILL"),
        (11 | 0x80, "killed by SIGSEGV (core dumped)"),
        ((19 << 8) | 0x7F, "stopped by SIGSTOP"),
        ((128 << 16) | (5 << 8) | 0x7F, "stopped by SIGTRAP, PTRACE_EVENT_STOP"),
        ((4 << 16) | (5 << 8) | 0x7F, "stopped by SIGTRAP, PTRACE_EVENT_EXEC"),
        (0xFFFF, "continued"),
    ],
)
def test_wait_status(status: int, reading: str) -> None:
    assert wait_status(status) == reading


def test_wait4_result_shows_the_value_then_its_reading() -> None:
    assert describe_result("wait4", (3, 768)) == "(3, 768)  exited 3"
    assert describe_result("wait4", (0, 0)) == "(0, 0)  no child has changed state"


@pytest.mark.parametrize(
    ("code", "status", "reading"),
    [
        (CLD_EXITED, 4, "pid 7: exited 4"),
        (CLD_KILLED, 9, "pid 7: killed by SIGKILL"),
        (CLD_DUMPED, 11, "pid 7: killed by SIGSEGV (core dumped)"),
        (CLD_TRAPPED, 5, "pid 7: trapped by SIGTRAP"),
        (CLD_STOPPED, 19, "pid 7: stopped by SIGSTOP"),
        (CLD_CONTINUED, 18, "pid 7: continued"),
    ],
)
def test_waitid_siginfo(code: int, status: int, reading: str) -> None:
    assert describe_result("waitid", WaitidInfo(7, 0, 17, status, code)).endswith("  " + reading)


def test_other_results() -> None:
    assert describe_result("waitid", (0, 0, 0, 0, 0)).endswith("no child has changed state")
    assert describe_result("exit", None) == "? <the task is gone>"
    assert describe_result("execve", None) == "0"
    assert describe_result("getpid", 3) == "3"
