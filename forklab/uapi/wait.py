"""wait4/waitid options and id types (uapi/linux/wait.h) and status encoding."""

from __future__ import annotations

from typing import NamedTuple

WNOHANG = 0x00000001
WUNTRACED = 0x00000002
WSTOPPED = WUNTRACED
WEXITED = 0x00000004
WCONTINUED = 0x00000008
WNOWAIT = 0x01000000
__WNOTHREAD = 0x20000000
__WALL = 0x40000000
__WCLONE = 0x80000000

P_ALL = 0
P_PID = 1
P_PGID = 2
P_PIDFD = 3

CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3
CLD_TRAPPED = 4
CLD_STOPPED = 5
CLD_CONTINUED = 6


def WIFEXITED(status: int) -> bool:
    return (status & 0x7F) == 0


def WEXITSTATUS(status: int) -> int:
    return (status >> 8) & 0xFF


def WIFSIGNALED(status: int) -> bool:
    return ((status & 0x7F) + 1) >> 1 > 0 and (status & 0x7F) != 0x7F


def WTERMSIG(status: int) -> int:
    return status & 0x7F


# Listed so that ``from forklab.uapi.wait import *`` carries the double-underscore options too.
__all__ = [
    "CLD_CONTINUED",
    "CLD_DUMPED",
    "CLD_EXITED",
    "CLD_KILLED",
    "CLD_STOPPED",
    "CLD_TRAPPED",
    "P_ALL",
    "P_PGID",
    "P_PID",
    "P_PIDFD",
    "WCONTINUED",
    "WEXITED",
    "WEXITSTATUS",
    "WIFEXITED",
    "WIFSIGNALED",
    "WNOHANG",
    "WNOWAIT",
    "WSTOPPED",
    "WTERMSIG",
    "WUNTRACED",
    "__WALL",
    "__WCLONE",
    "__WNOTHREAD",
]


class WaitidInfo(NamedTuple):
    """What waitid() writes into its siginfo_t (si_signo is SIGCHLD, or 0 if nothing was found)."""

    si_pid: int
    si_uid: int
    si_signo: int
    si_status: int
    si_code: int
