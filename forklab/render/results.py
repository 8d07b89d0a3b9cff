"""A call's result as a person reads it: wait statuses and waitid siginfo decoded."""

from __future__ import annotations

from typing import Any

from forklab.uapi import ptrace
from forklab.uapi.signal import signal_name
from forklab.uapi.wait import (
    CLD_CONTINUED,
    CLD_DUMPED,
    CLD_EXITED,
    CLD_KILLED,
    CLD_STOPPED,
    CLD_TRAPPED,
    WEXITSTATUS,
    WIFEXITED,
    WaitidInfo,
)

EVENT_NAMES = {
    value: name for name, value in vars(ptrace).items() if name.startswith("PTRACE_EVENT_") and isinstance(value, int)
}
WCOREFLAG = 0x80
CONTINUED_STATUS = 0xFFFF  # what wait4 reports for WCONTINUED
STOPPED_LOW_BYTE = 0x7F
WAITID_CODES = {
    CLD_EXITED: "exited {status}",
    CLD_KILLED: "killed by {signal}",
    CLD_DUMPED: "killed by {signal} (core dumped)",
    CLD_TRAPPED: "trapped by {signal}",
    CLD_STOPPED: "stopped by {signal}",
    CLD_CONTINUED: "continued",
}


def wait_status(status: int) -> str:
    """A wait4 status word in words: ``exited 3``, ``killed by SIGSEGV (core dumped)``,
    ``stopped by SIGTRAP, PTRACE_EVENT_STOP``, ``continued``."""
    if status == CONTINUED_STATUS:
        return "continued"
    if WIFEXITED(status):
        return f"exited {WEXITSTATUS(status)}"
    if status & 0xFF == STOPPED_LOW_BYTE:
        sig, event = (status >> 8) & 0xFF, status >> 16
        text = f"stopped by {signal_name(sig)}"
        if event:
            text += f", {EVENT_NAMES.get(event, f'event {event}')}"
        return text
    core = " (core dumped)" if status & WCOREFLAG else ""
    return f"killed by {signal_name(status & 0x7F)}{core}"


def waitid_info(info: WaitidInfo) -> str:
    """What a waitid siginfo says happened (si_code and si_status)."""
    code, value = info.si_code, info.si_status
    if not info.si_signo:
        return "no child has changed state"
    template = WAITID_CODES.get(code, "si_code {code}")
    return f"pid {info.si_pid}: " + template.format(status=value, signal=signal_name(value), code=code)


def describe_result(call: str, value: Any) -> str:
    """The value as strace would print it, with a reading after it for the wait calls."""
    if call == "waitid" and isinstance(value, tuple) and len(value) == len(WaitidInfo._fields):
        info = WaitidInfo(*value)
        return f"{tuple(info)}  {waitid_info(info)}"
    if call == "wait4" and isinstance(value, tuple) and len(value) == 2:
        pid, status = value
        if pid == 0:
            return f"{value}  no child has changed state"
        return f"{value}  {wait_status(status)}"
    if value is None:
        # exit never returns; a call with nothing to give back (execve) returned 0
        return "? <the task is gone>" if call in ("exit", "exit_group") else "0"
    return repr(value)
