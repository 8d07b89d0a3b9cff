"""kernel/sysctl.c, kernel/pid_namespace.c, kernel/ucount.c: the /proc/sys files the model has.

Each file has the mode sysctl_perm() tests (maybe widened by its table's ``permissions``
hook for the namespace it belongs to) and a handler that parses like
proc_dointvec_minmax: one number in range, else EINVAL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import ns_capable
from forklab.kernel.errors import KernelError
from forklab.kernel.fs.proc import proc_dir, proc_file
from forklab.kernel.fs.vfs import Inode
from forklab.kernel.machine import MAX_THREADS
from forklab.kernel.pid_namespace import PID_MAX_LIMIT, checkpoint_or_admin, pid_max_min, task_active_pid_ns
from forklab.kernel.ucount import INT_MAX, UCOUNT_SYSCTL_NAMES
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_SYS_ADMIN, CAP_SYS_RESOURCE

if TYPE_CHECKING:
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid_namespace import PidNamespace
    from forklab.kernel.task import Task


def parse_int(text: str, low: int, high: int, name: str) -> int:
    words = text.split()
    try:
        value = int(words[0]) if words else None
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise KernelError(E.EINVAL, f"sysctl {name}: {text.strip()!r} is not a number in {low}..{high}")
    return value


def widen_if(allowed: bool, mode: int) -> int:
    """A table ``permissions`` hook: the owner's bits for everyone when ``allowed``."""
    if not allowed:
        return mode
    owner = (mode & 0o700) >> 6
    return owner << 6 | owner << 3 | owner


def pid_max_ns(k: Machine, current: Task) -> PidNamespace:
    return task_active_pid_ns(current) if k.has(Behaviour.PER_NS_PID_MAX) else k.init_pid_ns


def pid_max_file(k: Machine) -> Inode:
    def show(k: Machine, current: Task, ns: PidNamespace) -> str:
        return f"{pid_max_ns(k, current).pid_max}\n"

    def store(k: Machine, current: Task, text: str) -> None:
        pid_max_ns(k, current).pid_max = parse_int(text, pid_max_min(k), PID_MAX_LIMIT, "kernel.pid_max")

    def mode(current: Task) -> int:
        ns = pid_max_ns(k, current)
        return widen_if(k.has(Behaviour.PER_NS_PID_MAX) and ns_capable(current, ns.user_ns, CAP_SYS_ADMIN), 0o644)

    return proc_file("pid_max", show, store, mode=0o644, sysctl_mode=mode)


def ns_last_pid_file() -> Inode:
    def show(k: Machine, current: Task, ns: PidNamespace) -> str:
        return f"{task_active_pid_ns(current).idr_next - 1}\n"

    def store(k: Machine, current: Task, text: str) -> None:
        target = task_active_pid_ns(current)
        if not checkpoint_or_admin(current, target):
            raise KernelError(E.EPERM, "sysctl kernel.ns_last_pid: needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN")
        target.idr_next = parse_int(text, 0, target.pid_max, "kernel.ns_last_pid") + 1

    return proc_file("ns_last_pid", show, store, mode=0o666, sysctl_mode=lambda current: 0o666)


def threads_max_file() -> Inode:
    def show(k: Machine, current: Task, ns: PidNamespace) -> str:
        return f"{k.max_threads}\n"

    def store(k: Machine, current: Task, text: str) -> None:
        k.max_threads = parse_int(text, 1, MAX_THREADS, "kernel.threads-max")

    return proc_file("threads-max", show, store, mode=0o644, sysctl_mode=lambda current: 0o644)


def suid_dumpable_file() -> Inode:
    def show(k: Machine, current: Task, ns: PidNamespace) -> str:
        return f"{k.suid_dumpable}\n"

    def store(k: Machine, current: Task, text: str) -> None:
        k.suid_dumpable = parse_int(text, 0, 2, "fs.suid_dumpable")

    return proc_file("suid_dumpable", show, store, mode=0o644, sysctl_mode=lambda current: 0o644)


def ucount_max_file(index: int) -> Inode:
    """/proc/sys/user/max_*: each user namespace has its own; CAP_SYS_RESOURCE over it may write."""
    name = UCOUNT_SYSCTL_NAMES[index]

    def show(k: Machine, current: Task, ns: PidNamespace) -> str:
        return f"{current.cred.user_ns.ucount_max[index]}\n"

    def store(k: Machine, current: Task, text: str) -> None:
        current.cred.user_ns.ucount_max[index] = parse_int(text, 0, INT_MAX, f"user.{name}")

    def mode(current: Task) -> int:
        allowed = ns_capable(current, current.cred.user_ns, CAP_SYS_RESOURCE)
        return 0o666 if allowed else 0o444

    return proc_file(name, show, store, mode=0o644, sysctl_mode=mode)


def sys_dir() -> Inode:
    def kernel(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {"pid_max": pid_max_file(k), "ns_last_pid": ns_last_pid_file(), "threads-max": threads_max_file()}

    def user(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {name: ucount_max_file(index) for index, name in enumerate(UCOUNT_SYSCTL_NAMES)}

    def fs(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {"suid_dumpable": suid_dumpable_file()}

    def top(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {"fs": proc_dir("fs", fs), "kernel": proc_dir("kernel", kernel), "user": proc_dir("user", user)}

    return proc_dir("sys", top)
