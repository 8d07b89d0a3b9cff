"""Each explained difference matches the case it explains, and nothing near it."""

from __future__ import annotations

import pytest

from forklab.diff.known import KNOWN, Difference, explain, reason


def names(difference: Difference) -> str:
    return explain(difference).explained_by


MODEL_UNAME = "('Linux', 'forklab', '6.18.0', '#1', 'x86_64')"
HOST_UNAME = "('Linux', 'forklab', '6.18.44', '#1 SMP', 'x86_64')"
FAIL_NTH = "t0.write_file('/proc/self/fail-nth', '1')"
VFORK = "t3 = t1.vfork() (asleep since step 4)"
WAIT4 = "t5.wait4(-1, __WALL) (asleep since step 14)"


@pytest.mark.parametrize(
    ("difference", "expected"),
    [
        (Difference(3, "result", FAIL_NTH, "0", "-ENOENT"), "no-fault-injection"),
        (Difference(1, "result", "t0.uname()", MODEL_UNAME, HOST_UNAME), "kernel-release"),
        # The host name differs too: not only the release.
        (Difference(1, "result", "t0.uname()", MODEL_UNAME.replace("forklab", "a"), HOST_UNAME), ""),
        (Difference(2, "result", "t0.peek(m, 8)", "-EFAULT", "b'ab'"), "peek-short-read"),
        (Difference(2, "result", "t0.peek(m, 8)", "b'ab'", "-EFAULT"), ""),
        (Difference(-1, "trace", "order of trace lines across tasks", "a", "b"), "concurrent-order"),
        (Difference(-1, "trace", "which thread of a dying group exits last", "a", "b"), "group-exit-race"),
        (Difference(5, "pending", VFORK, "gone", "3"), "vfork-release-race"),
        (Difference(5, "pending", VFORK, "still asleep", "3"), "vfork-release-race"),
        (Difference(5, "pending", VFORK, "3", "still asleep"), ""),
        (Difference(5, "pending", VFORK, "4", "3"), ""),
        (Difference(5, "pending", VFORK, "still asleep", "3"), "vfork-release-race"),
        (Difference(5, "pending", VFORK, "3", "still asleep"), ""),
        (Difference(5, "pending", "t0.wait4(-1, 0) (asleep since step 4)", "still asleep", "3"), ""),
        (Difference(5, "pending", "t8 = t4.clone(SIGCHLD) (asleep since step 4)", "gone", "4"), "tracer-death-race"),
        (Difference(5, "pending", "t8 = t4.clone(SIGCHLD) (asleep since step 4)", "4", "gone"), ""),
        (Difference(5, "pending", "t0.wait4(-1, 0) (asleep since step 4)", "gone", "3"), ""),
        (Difference(5, "result", "t1.kill(t5, SIGKILL)", "0", "gone"), "kill-return-race"),
        (Difference(5, "result", "t1.kill(t5, SIGKILL)", "0", "-EPERM"), ""),
        (Difference(5, "result", "t2.ptrace(PTRACE_KILL, t6)", "0", "pending"), "kill-return-race"),
        (Difference(5, "result", "t2.pidfd_send_signal(fd3, SIGKILL, 0)", "0", "gone"), "kill-return-race"),
        (
            Difference(7, "pending", "t2.ptrace(PTRACE_KILL, t6) (asleep since step 6)", "still asleep", "0"),
            "kill-return-race",
        ),
        (Difference(5, "result", "t2.ptrace(PTRACE_CONT, t6)", "0", "pending"), ""),
        (Difference(5, "result", "t2.ptrace(PTRACE_KILL, t6)", "pending", "0"), ""),
        (Difference(7, "pending", "t2.wait4(t6, 0) (asleep since step 6)", "still asleep", "0"), ""),
        (Difference(5, "result", "t9.ptrace(PTRACE_SEIZE, t3, 0, 0)", "pending", "0"), "attach-trap-race"),
        (
            Difference(6, "pending", "t9.ptrace(PTRACE_ATTACH, t3) (asleep since step 5)", "0", "still asleep"),
            "attach-trap-race",
        ),
        (Difference(5, "result", "t9.ptrace(PTRACE_SEIZE, t3, 0, 0)", "0", "pending"), ""),
        (Difference(5, "result", "t9.ptrace(PTRACE_CONT, t3, 0, 0)", "pending", "0"), ""),
        (Difference(5, "status", "pid 3 State", "R (running)", "S (sleeping)"), ""),
        (Difference(16, "pending", WAIT4, "(6, 8390015)", "(2, 66943)"), "fork-stops-race"),
        (Difference(16, "pending", WAIT4, "(6, 8390015)", "(2, 198015)"), "fork-stops-race"),  # a clone event
        (Difference(16, "pending", WAIT4, "(2, 66943)", "(6, 8390015)"), ""),  # the other way round
        (Difference(16, "pending", WAIT4, "(6, 8390015)", "(2, 4991)"), ""),  # a group stop, no event
        (Difference(16, "pending", WAIT4, "(6, 8390015)", "still asleep"), ""),
        (Difference(5, "result", "t1.getpid()", "2", "3"), ""),
    ],
)
def test_matches(difference: Difference, expected: str) -> None:
    assert names(difference) == expected


def test_every_known_difference_has_a_reason() -> None:
    assert len({known.name for known in KNOWN}) == len(KNOWN)
    for known in KNOWN:
        assert len(reason(known.name)) > 40
