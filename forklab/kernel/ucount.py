"""kernel/ucount.c: per-(user namespace, uid) counters of namespaces and rlimit resources.

A count is charged at every level from the task's user namespace up to the initial one:
each namespace's ``ucounts`` is its creator's entry in the parent namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.user_namespace import UserNamespace

# enum ucount_type
UCOUNT_USER_NAMESPACES = 0
UCOUNT_PID_NAMESPACES = 1
UCOUNT_UTS_NAMESPACES = 2
UCOUNT_IPC_NAMESPACES = 3
UCOUNT_NET_NAMESPACES = 4
UCOUNT_MNT_NAMESPACES = 5
UCOUNT_CGROUP_NAMESPACES = 6
UCOUNT_TIME_NAMESPACES = 7
UCOUNT_COUNTS = 8
# /proc/sys/user/max_* names, in enum order.
UCOUNT_SYSCTL_NAMES = (
    "max_user_namespaces",
    "max_pid_namespaces",
    "max_uts_namespaces",
    "max_ipc_namespaces",
    "max_net_namespaces",
    "max_mnt_namespaces",
    "max_cgroup_namespaces",
    "max_time_namespaces",
)

# enum rlimit_type
UCOUNT_RLIMIT_NPROC = 0
UCOUNT_RLIMIT_MSGQUEUE = 1
UCOUNT_RLIMIT_SIGPENDING = 2
UCOUNT_RLIMIT_MEMLOCK = 3
UCOUNT_RLIMIT_COUNTS = 4

LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1


class Ucounts:
    """struct ucounts: the counters of one uid in one user namespace."""

    __slots__ = ("count", "ns", "rlimit", "ucount", "uid")

    def __init__(self, ns: UserNamespace, uid: int) -> None:
        self.ns = ns
        self.uid = uid
        self.count = 0
        self.ucount = [0] * UCOUNT_COUNTS
        self.rlimit = [0] * UCOUNT_RLIMIT_COUNTS

    def __repr__(self) -> str:
        return f"<ucounts ns={self.ns.level} uid={self.uid} refs={self.count}>"


class UcountsTable:
    """The hash table of ucounts, keyed by (namespace, uid)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[tuple[UserNamespace, int], Ucounts] = {}


def alloc_ucounts(k: Machine, ns: UserNamespace, uid: int) -> Ucounts:
    """Find or create the entry and take a reference."""
    key = (ns, uid)
    ucounts = k.ucounts.entries.get(key)
    if ucounts is None:
        k.kmem_cache_alloc(k.current, "ucounts")
        ucounts = k.ucounts.entries[key] = Ucounts(ns, uid)
    ucounts.count += 1
    return ucounts


def get_ucounts(ucounts: Ucounts) -> Ucounts:
    ucounts.count += 1
    return ucounts


def put_ucounts(k: Machine, ucounts: Ucounts) -> None:
    ucounts.count -= 1
    if ucounts.count == 0:
        del k.ucounts.entries[(ucounts.ns, ucounts.uid)]
        k.kmem_cache_free("ucounts")


def inc_ucount(k: Machine, ns: UserNamespace, uid: int, kind: int) -> Ucounts | None:
    """Charge one namespace of ``kind`` at every level; None when a level is at its maximum."""
    ucounts = alloc_ucounts(k, ns, uid)
    charged: list[Ucounts] = []
    it: Ucounts | None = ucounts
    while it is not None:
        if it.ucount[kind] >= it.ns.ucount_max[kind]:
            for done in charged:
                done.ucount[kind] -= 1
            put_ucounts(k, ucounts)
            return None
        it.ucount[kind] += 1
        charged.append(it)
        it = it.ns.ucounts
    return ucounts


def dec_ucount(k: Machine, ucounts: Ucounts, kind: int) -> None:
    it: Ucounts | None = ucounts
    while it is not None:
        it.ucount[kind] -= 1
        it = it.ns.ucounts
    put_ucounts(k, ucounts)


def inc_rlimit_ucounts(ucounts: Ucounts, kind: int, v: int) -> None:
    it: Ucounts | None = ucounts
    while it is not None:
        it.rlimit[kind] += v
        it = it.ns.ucounts


def dec_rlimit_ucounts(ucounts: Ucounts, kind: int, v: int) -> None:
    inc_rlimit_ucounts(ucounts, kind, -v)


def is_rlimit_overlimit(ucounts: Ucounts, kind: int, rlimit: int) -> bool:
    """Is any level over its limit: the caller's rlimit first, each namespace's rlimit_max above."""
    limit = min(rlimit, LONG_MAX)
    it: Ucounts | None = ucounts
    while it is not None:
        if it.rlimit[kind] > limit:
            return True
        limit = min(it.ns.rlimit_max[kind], LONG_MAX)
        it = it.ns.ucounts
    return False
