"""Signal numbers (x86-64), sigaction handler values and flags, sigprocmask modes."""

from __future__ import annotations

SIGHUP = 1
SIGINT = 2
SIGQUIT = 3
SIGILL = 4
SIGTRAP = 5
SIGABRT = 6
SIGBUS = 7
SIGFPE = 8
SIGKILL = 9
SIGUSR1 = 10
SIGSEGV = 11
SIGUSR2 = 12
SIGPIPE = 13
SIGALRM = 14
SIGTERM = 15
SIGSTKFLT = 16
SIGCHLD = 17
SIGCONT = 18
SIGSTOP = 19
SIGTSTP = 20
SIGTTIN = 21
SIGTTOU = 22
SIGURG = 23
SIGXCPU = 24
SIGXFSZ = 25
SIGVTALRM = 26
SIGPROF = 27
SIGWINCH = 28
SIGIO = 29
SIGPWR = 30
SIGSYS = 31
SIGRTMIN = 32
SIGRTMAX = 64
_NSIG = 64

SIG_DFL = 0
SIG_IGN = 1

SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000

SIG_BLOCK = 0
SIG_UNBLOCK = 1
SIG_SETMASK = 2

SIGNAL_NAMES: dict[int, str] = {
    value: name
    for name, value in list(globals().items())
    if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) and isinstance(value, int)
}


def valid_signal(sig: int) -> bool:
    """The kernel's valid_signal(): 0 .. _NSIG inclusive."""
    return 0 <= sig <= _NSIG


def sigmask(sig: int) -> int:
    """The bit for ``sig`` in a 64-bit signal set."""
    return 1 << (sig - 1)


def signal_name(sig: int) -> str:
    """``SIGCHLD`` for 17, ``SIGRTMIN+3`` for 35, the number otherwise."""
    if sig in SIGNAL_NAMES:
        return SIGNAL_NAMES[sig]
    if SIGRTMIN <= sig <= SIGRTMAX:
        return "SIGRTMIN" if sig == SIGRTMIN else f"SIGRTMIN+{sig - SIGRTMIN}"
    return str(sig)
