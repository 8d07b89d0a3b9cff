"""net/core/net_namespace.c: network namespaces (empty of devices in the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.ucount import UCOUNT_NET_NAMESPACES
from forklab.uapi.sched import CLONE_NEWNET

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace


class NetNamespace(NsCommon):
    __slots__ = ()
    ucount_type = UCOUNT_NET_NAMESPACES
    cache = "net_namespace"
    kind = "net"


def copy_net_ns(k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: NetNamespace) -> NetNamespace:
    if not flags & CLONE_NEWNET:
        return get_ns(old)
    return create_ns(k, current, NetNamespace, user_ns)
