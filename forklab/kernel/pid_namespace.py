"""kernel/pid_namespace.c: pid namespaces, nesting limits, ns_last_pid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import ns_capable
from forklab.kernel.errors import KernelError
from forklab.kernel.ucount import UCOUNT_PID_NAMESPACES, Ucounts, dec_ucount, inc_ucount
from forklab.kernel.user_namespace import UserNamespace, get_user_ns, in_userns, put_user_ns
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN
from forklab.uapi.sched import CLONE_NEWPID

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid import Pid
    from forklab.kernel.task import Task

MAX_PID_NS_LEVEL = 32
PIDNS_ADDING = 1 << 31
RESERVED_PIDS = 300
PID_MAX_DEFAULT = 0x8000
PID_MAX_LIMIT = 4 * 1024 * 1024
PIDS_PER_CPU_DEFAULT = 1024
PIDS_PER_CPU_MIN = 8
PROC_PID_INIT_INO = 0xEFFFFFFC


class PidNamespace:
    """struct pid_namespace: an idr of pid numbers, a reaper, a level."""

    __slots__ = (
        "child_reaper",
        "count",
        "idr",
        "idr_next",
        "inum",
        "level",
        "parent",
        "pid_allocated",
        "pid_max",
        "ucounts",
        "user_ns",
    )

    parent: PidNamespace | None
    level: int
    user_ns: UserNamespace
    inum: int
    count: int
    idr: dict[int, Pid | None]
    idr_next: int
    pid_allocated: int
    child_reaper: Task | None
    pid_max: int
    ucounts: Ucounts | None

    def __init__(self, parent: PidNamespace | None, user_ns: UserNamespace, inum: int, pid_max: int) -> None:
        self.parent = parent
        self.level = 0 if parent is None else parent.level + 1
        self.user_ns = user_ns
        self.inum = inum
        self.count = 1
        # nr -> struct pid; None while a number is reserved but not yet published.
        self.idr = {}
        self.idr_next = 0
        self.pid_allocated = PIDNS_ADDING
        self.child_reaper = None
        self.pid_max = pid_max
        self.ucounts = None

    def __repr__(self) -> str:
        return f"<pid_ns level={self.level} inum={self.inum}>"


def make_init_pid_ns(k: Machine, user_ns: UserNamespace) -> PidNamespace:
    pid_max = min(PID_MAX_LIMIT, max(PID_MAX_DEFAULT, PIDS_PER_CPU_DEFAULT * k.nr_cpu_ids))
    return PidNamespace(None, user_ns, PROC_PID_INIT_INO, pid_max)


def pid_max_min(k: Machine) -> int:
    """The smallest pid_max a write may set: room for the reserved pids, 8 per CPU."""
    return max(RESERVED_PIDS + 1, PIDS_PER_CPU_MIN * k.nr_cpu_ids)


def get_pid_ns(ns: PidNamespace) -> PidNamespace:
    ns.count += 1
    return ns


def put_pid_ns(k: Machine, ns: PidNamespace | None) -> None:
    while ns is not None and ns.parent is not None:
        ns.count -= 1
        if ns.count:
            return
        parent = ns.parent
        assert ns.ucounts is not None
        dec_ucount(k, ns.ucounts, UCOUNT_PID_NAMESPACES)
        put_user_ns(k, ns.user_ns)
        k.kmem_cache_free("pid_namespace")
        ns = parent
    if ns is not None:
        ns.count -= 1


def create_pid_namespace(k: Machine, current: Task, user_ns: UserNamespace, parent: PidNamespace) -> PidNamespace:
    level = parent.level + 1
    if not in_userns(parent.user_ns, user_ns):
        raise KernelError(E.EINVAL, "create_pid_namespace: owner user namespace is not below the parent's")
    if level > MAX_PID_NS_LEVEL:
        raise KernelError(E.ENOSPC, "create_pid_namespace: pid namespaces nested deeper than 32 levels")
    ucounts = inc_ucount(k, user_ns, current.cred.euid, UCOUNT_PID_NAMESPACES)
    if ucounts is None:
        raise KernelError(E.ENOSPC, "create_pid_namespace: max_pid_namespaces reached")
    try:
        k.kmem_cache_alloc(current, "pid_namespace")
    except KernelError:
        dec_ucount(k, ucounts, UCOUNT_PID_NAMESPACES)
        raise
    pid_max = PID_MAX_LIMIT if k.has(Behaviour.PER_NS_PID_MAX) else k.init_pid_ns.pid_max
    ns = PidNamespace(get_pid_ns(parent), get_user_ns(user_ns), k.proc_alloc_inum(), pid_max)
    ns.ucounts = ucounts
    return ns


def copy_pid_ns(k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: PidNamespace) -> PidNamespace:
    if not flags & CLONE_NEWPID:
        return get_pid_ns(old)
    if task_active_pid_ns(current) is not old:
        raise KernelError(E.EINVAL, "copy_pid_ns: a new pid namespace is already pending for children")
    return create_pid_namespace(k, current, user_ns, old)


def task_active_pid_ns(task: Task) -> PidNamespace:
    pid = task.thread_pid
    assert pid is not None
    return pid.numbers[-1][1]


def pid_max_of(k: Machine, ns: PidNamespace) -> int:
    """The limit that alloc_pid applies at this level."""
    return ns.pid_max if k.has(Behaviour.PER_NS_PID_MAX) else k.init_pid_ns.pid_max


def checkpoint_or_admin(current: Task, ns: PidNamespace) -> bool:
    """checkpoint_restore_ns_capable(): CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over ``ns``'s owner."""
    return ns_capable(current, ns.user_ns, CAP_SYS_ADMIN) or ns_capable(current, ns.user_ns, CAP_CHECKPOINT_RESTORE)
