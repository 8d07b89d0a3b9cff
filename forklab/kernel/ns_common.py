"""include/linux/ns_common.h: what every namespace has, and how one is created.

uts, ipc, mnt, net, cgroup and time namespaces are all made the same way: charge the
owner's ucount for that kind (ENOSPC at its maximum), allocate (ENOMEM), take an inode
number, hold a reference on the owning user namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from forklab.kernel.errors import KernelError
from forklab.kernel.ucount import UCOUNT_SYSCTL_NAMES, Ucounts, dec_ucount, inc_ucount
from forklab.kernel.user_namespace import UserNamespace, get_user_ns, put_user_ns
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


class NsCommon:
    """The fields every non-pid, non-user namespace shares."""

    __slots__ = ("count", "inum", "ucounts", "user_ns")

    # Set by each subclass: its ucount type and its slab cache's name.
    ucount_type = -1
    cache = ""
    kind = ""

    def __init__(self, user_ns: UserNamespace, inum: int, ucounts: Ucounts | None) -> None:
        self.user_ns = user_ns
        self.inum = inum
        self.ucounts = ucounts
        self.count = 1

    def __repr__(self) -> str:
        return f"<{self.kind}_ns inum={self.inum}>"


NS = TypeVar("NS", bound=NsCommon)


def create_ns(k: Machine, current: Task, cls: type[NS], user_ns: UserNamespace) -> NS:
    """A new namespace of ``cls`` owned by ``user_ns``; the subclass fills in its own state."""
    ucounts = inc_ucount(k, user_ns, current.cred.euid, cls.ucount_type)
    if ucounts is None:
        raise KernelError(E.ENOSPC, f"copy_{cls.kind}: {UCOUNT_SYSCTL_NAMES[cls.ucount_type]} reached")
    try:
        k.kmem_cache_alloc(current, cls.cache)
    except KernelError:
        dec_ucount(k, ucounts, cls.ucount_type)
        raise
    ns = cls.__new__(cls)
    NsCommon.__init__(ns, get_user_ns(user_ns), k.proc_alloc_inum(), ucounts)
    return ns


def get_ns(ns: NS) -> NS:
    ns.count += 1
    return ns


def put_ns(k: Machine, ns: NsCommon) -> None:
    """Drop a reference; the last frees the namespace (initial namespaces are never freed)."""
    ns.count -= 1
    if ns.count or ns.ucounts is None:
        return
    dec_ucount(k, ns.ucounts, ns.ucount_type)
    put_user_ns(k, ns.user_ns)
    k.kmem_cache_free(ns.cache)
