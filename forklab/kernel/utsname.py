"""kernel/utsname.c: uts namespaces (hostname and domain name)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.ucount import UCOUNT_UTS_NAMESPACES
from forklab.uapi.sched import CLONE_NEWUTS

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace

PROC_UTS_INIT_INO = 0xEFFFFFFE
__NEW_UTS_LEN = 64
UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")


class UtsNamespace(NsCommon):
    """struct uts_namespace: its struct new_utsname as a tuple in UTS_FIELDS order."""

    __slots__ = ("name",)
    ucount_type = UCOUNT_UTS_NAMESPACES
    cache = "uts_namespace"
    kind = "uts"
    name: tuple[str, ...]


def make_init_uts_ns(user_ns: UserNamespace, release: str) -> UtsNamespace:
    ns = UtsNamespace(user_ns, PROC_UTS_INIT_INO, None)
    ns.name = ("Linux", "(none)", release, "#1 SMP PREEMPT_DYNAMIC forklab", "x86_64", "(none)")
    return ns


def copy_utsname(k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: UtsNamespace) -> UtsNamespace:
    if not flags & CLONE_NEWUTS:
        return get_ns(old)
    ns = create_ns(k, current, UtsNamespace, user_ns)
    ns.name = old.name
    return ns
