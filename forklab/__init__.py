"""forklab: Linux process creation, executable in Python.

    import forklab
    k = forklab.boot(version="6.18", cpus=2, seed=0)
    init = k.task(1)
    pid = init.fork()

See ``forklab.api`` for the calls a task can make; every Linux constant a C program would
include for them (CLONE_*, SIG*, W*, O_*, MADV_*, RLIMIT_*, PR_*, E*) is importable from here.
"""

from forklab.api import (
    Kernel,
    KernelPanic,
    Pending,
    SyscallError,
    TaskBlocked,
    TaskGoneError,
    TaskHandle,
    boot,
)
from forklab.uapi import *  # noqa: F403
from forklab.uapi.signal import _NSIG, SIG_DFL, SIG_IGN  # noqa: F401
from forklab.uapi.wait import __WALL, __WCLONE, __WNOTHREAD, WaitidInfo  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "Kernel",
    "KernelPanic",
    "Pending",
    "SyscallError",
    "TaskBlocked",
    "TaskGoneError",
    "TaskHandle",
    "WaitidInfo",
    "boot",
    *[name for name in dir() if name.isupper() or name.startswith(("__W", "_NSIG"))],
]
