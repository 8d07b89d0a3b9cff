"""kernel/time/namespace.c: time namespaces, entered by children after unshare."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.ucount import UCOUNT_TIME_NAMESPACES
from forklab.uapi.sched import CLONE_NEWTIME

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace

PROC_TIME_INIT_INO = 0xEFFFFFFA


class TimeNamespace(NsCommon):
    """struct time_namespace: clock offsets, frozen once a task has entered it."""

    __slots__ = ("frozen_offsets", "offsets")
    ucount_type = UCOUNT_TIME_NAMESPACES
    cache = "time_namespace"
    kind = "time"
    offsets: tuple[int, int]  # (monotonic, boottime) in nanoseconds
    frozen_offsets: bool


def make_init_time_ns(user_ns: UserNamespace) -> TimeNamespace:
    ns = TimeNamespace(user_ns, PROC_TIME_INIT_INO, None)
    ns.offsets = (0, 0)
    ns.frozen_offsets = True
    return ns


def copy_time_ns(k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: TimeNamespace) -> TimeNamespace:
    if not flags & CLONE_NEWTIME:
        return get_ns(old)
    ns = create_ns(k, current, TimeNamespace, user_ns)
    ns.offsets = old.offsets
    ns.frozen_offsets = False
    return ns
