"""The machine's own kernel as the model's oracle: the same system calls, run for real.

``Sandbox`` runs real tasks in fresh user, pid, mount, uts and ipc namespaces with a pids
cgroup cap and time limits; each task is a small puppet program (puppet.c) that makes one
system call per command. See sandbox.py for the mechanics and calls.py for the calls.
"""

from forklab.host.build import host_available
from forklab.host.calls import CALLS
from forklab.host.errors import HostError, HostTaskBusy, HostTaskGone, HostTimeout, HostUnavailable
from forklab.host.protocol import RESERVED_FDS
from forklab.host.sandbox import HostResult, HostTask, Sandbox
from forklab.host.tracing import TraceRecord
from forklab.uapi.wait import WaitidInfo

__all__ = [
    "CALLS",
    "RESERVED_FDS",
    "HostError",
    "HostResult",
    "HostTask",
    "HostTaskBusy",
    "HostTaskGone",
    "HostTimeout",
    "HostUnavailable",
    "Sandbox",
    "TraceRecord",
    "WaitidInfo",
    "host_available",
]
