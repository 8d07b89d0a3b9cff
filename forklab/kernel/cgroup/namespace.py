"""kernel/cgroup/namespace.c: cgroup namespaces, rooted at the creator's cgroup."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.ucount import UCOUNT_CGROUP_NAMESPACES
from forklab.uapi.sched import CLONE_NEWCGROUP

if TYPE_CHECKING:
    from forklab.kernel.cgroup.cgroup import CssSet
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace

PROC_CGROUP_INIT_INO = 0xEFFFFFFB


class CgroupNamespace(NsCommon):
    __slots__ = ("root_cset",)
    ucount_type = UCOUNT_CGROUP_NAMESPACES
    cache = "cgroup_namespace"
    kind = "cgroup"
    root_cset: CssSet


def copy_cgroup_ns(
    k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: CgroupNamespace
) -> CgroupNamespace:
    if not flags & CLONE_NEWCGROUP:
        return get_ns(old)
    ns = create_ns(k, current, CgroupNamespace, user_ns)
    assert current.cgroups is not None
    ns.root_cset = current.cgroups
    return ns
