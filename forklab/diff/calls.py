"""What each call of the sequence language returns, so both sides' results can be named and compared.

A call's result kind says how to bind it to names (``t1 = t0.fork()`` names a task) and what
to compare: the pid a clone returns is compared as the caller sees it; an address from mmap
is only named, since the two address spaces differ; a file's text is compared as text.
"""

from __future__ import annotations

from dataclasses import dataclass

# Result kinds.
TASK = "task"  # a clone: the child's pid as the caller sees it; the name binds the child
FD = "fd"
FDS = "fds"  # pipe: two fds
ADDR = "addr"  # named, not compared
INT = "int"
TUPLE = "tuple"
BYTES = "bytes"
TEXT = "text"
NONE = "none"


@dataclass(frozen=True)
class CallSpec:
    result: str
    # A call that may leave its task asleep in the kernel (its result comes later).
    may_block: bool = False
    # A call after which other tasks move (signals delivered, deaths): compare everything again.
    moves_others: bool = False


CALLS: dict[str, CallSpec] = {
    "fork": CallSpec(TASK),
    "vfork": CallSpec(TASK, may_block=True),
    "clone": CallSpec(TASK, may_block=True),
    "clone3": CallSpec(TASK, may_block=True),
    "execve": CallSpec(NONE, moves_others=True),
    "exit": CallSpec(NONE, moves_others=True),
    "exit_group": CallSpec(NONE, moves_others=True),
    "wait4": CallSpec(TUPLE, may_block=True),
    "waitid": CallSpec(TUPLE, may_block=True),
    "ptrace": CallSpec(INT, moves_others=True),
    "pidfd_open": CallSpec(FD),
    "pidfd_send_signal": CallSpec(NONE, moves_others=True),
    "unshare": CallSpec(NONE),
    "getpid": CallSpec(INT),
    "gettid": CallSpec(INT),
    "getppid": CallSpec(INT),
    "getuid": CallSpec(INT),
    "geteuid": CallSpec(INT),
    "getgid": CallSpec(INT),
    "getegid": CallSpec(INT),
    "getresuid": CallSpec(TUPLE),
    "getresgid": CallSpec(TUPLE),
    "setresuid": CallSpec(NONE),
    "setresgid": CallSpec(NONE),
    "setgroups": CallSpec(NONE),
    "setsid": CallSpec(INT),
    "setpgid": CallSpec(NONE),
    "getpgid": CallSpec(INT),
    "getsid": CallSpec(INT),
    "getrlimit": CallSpec(TUPLE),
    "setrlimit": CallSpec(NONE),
    "prctl": CallSpec(INT),
    "sched_setattr": CallSpec(NONE),
    "sched_getattr": CallSpec(TUPLE),
    "sched_setscheduler": CallSpec(NONE),
    "sched_getscheduler": CallSpec(INT),
    "sched_setparam": CallSpec(NONE),
    "sched_getparam": CallSpec(INT),
    "sched_get_priority_max": CallSpec(INT),
    "sched_get_priority_min": CallSpec(INT),
    "setpriority": CallSpec(NONE),
    "getpriority": CallSpec(INT),
    "open": CallSpec(FD),
    "close": CallSpec(NONE),
    "dup": CallSpec(FD),
    "fcntl": CallSpec(INT),
    "read": CallSpec(BYTES, may_block=True),
    "write": CallSpec(INT, may_block=True),
    "lseek": CallSpec(INT),
    "pipe": CallSpec(FDS),
    "chdir": CallSpec(NONE),
    "getcwd": CallSpec(TEXT),
    "umask": CallSpec(INT),
    "readlink": CallSpec(TEXT),
    "read_file": CallSpec(TEXT),
    "write_file": CallSpec(NONE),
    "mount": CallSpec(NONE),
    "sigaction": CallSpec(INT),
    "sigprocmask": CallSpec(INT),
    "kill": CallSpec(NONE, moves_others=True),
    "tgkill": CallSpec(NONE, moves_others=True),
    "sethostname": CallSpec(NONE),
    "uname": CallSpec(TUPLE),
    "mmap": CallSpec(ADDR),
    "munmap": CallSpec(NONE),
    "madvise": CallSpec(NONE),
    "peek": CallSpec(BYTES),
    "poke": CallSpec(NONE),
    "mkdir": CallSpec(NONE),
    "rmdir": CallSpec(NONE),
}


def spec(name: str) -> CallSpec:
    found = CALLS.get(name)
    if found is None:
        raise KeyError(name)
    return found
