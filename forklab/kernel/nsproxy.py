"""kernel/nsproxy.c: the set of namespaces a task is in, shared until one of them changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cgroup.namespace import CgroupNamespace, copy_cgroup_ns
from forklab.kernel.cred import ns_capable
from forklab.kernel.errors import KernelError
from forklab.kernel.fs.namespace import MntNamespace, copy_mnt_ns, free_mnt_ns_mounts
from forklab.kernel.ftrace import traced
from forklab.kernel.ipc import IpcNamespace, copy_ipcs
from forklab.kernel.net import NetNamespace, copy_net_ns
from forklab.kernel.ns_common import NsCommon, get_ns, put_ns
from forklab.kernel.pid_namespace import PidNamespace, copy_pid_ns, get_pid_ns, put_pid_ns
from forklab.kernel.time_namespace import TimeNamespace, copy_time_ns
from forklab.kernel.utsname import UtsNamespace, copy_utsname
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_SYS_ADMIN
from forklab.uapi.sched import CLONE_NEWIPC, CLONE_NS_FLAGS, CLONE_SYSVSEM, CLONE_VM

if TYPE_CHECKING:
    from forklab.kernel.fs.fs_struct import FsStruct
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace


class Nsproxy:
    """struct nsproxy."""

    __slots__ = (
        "cgroup_ns",
        "count",
        "ipc_ns",
        "mnt_ns",
        "net_ns",
        "pid_ns_for_children",
        "time_ns",
        "time_ns_for_children",
        "uts_ns",
    )

    count: int
    uts_ns: UtsNamespace
    ipc_ns: IpcNamespace
    mnt_ns: MntNamespace
    pid_ns_for_children: PidNamespace
    cgroup_ns: CgroupNamespace
    net_ns: NetNamespace
    time_ns: TimeNamespace
    time_ns_for_children: TimeNamespace


def get_nsproxy(ns: Nsproxy) -> Nsproxy:
    ns.count += 1
    return ns


def put_nsproxy(k: Machine, ns: Nsproxy) -> None:
    ns.count -= 1
    if ns.count == 0:
        free_nsproxy(k, ns)


def free_nsproxy(k: Machine, ns: Nsproxy) -> None:
    """Drop the references in reverse order of creation."""
    put_ns(k, ns.time_ns)
    put_ns(k, ns.time_ns_for_children)
    put_ns(k, ns.net_ns)
    put_ns(k, ns.cgroup_ns)
    put_pid_ns(k, ns.pid_ns_for_children)
    put_ns(k, ns.ipc_ns)
    put_ns(k, ns.uts_ns)
    put_mnt_ns(k, ns.mnt_ns)
    k.kmem_cache_free("nsproxy")


def put_mnt_ns(k: Machine, ns: MntNamespace) -> None:
    if ns.count == 1 and ns.ucounts is not None:
        free_mnt_ns_mounts(k, ns)
    put_ns(k, ns)


def create_new_namespaces(
    k: Machine, current: Task, flags: int, tsk: Task, user_ns: UserNamespace, new_fs: FsStruct | None
) -> Nsproxy:
    """A new nsproxy: a fresh namespace for each CLONE_NEW* flag, a reference to the old otherwise."""
    k.kmem_cache_alloc(current, "nsproxy")
    old = tsk.nsproxy
    assert old is not None
    new = Nsproxy()
    new.count = 1
    made: list[NsCommon | PidNamespace] = []
    try:
        new.mnt_ns = copy_mnt_ns(k, current, flags, old.mnt_ns, user_ns, new_fs)
        made.append(new.mnt_ns)
        new.uts_ns = copy_utsname(k, current, flags, user_ns, old.uts_ns)
        made.append(new.uts_ns)
        new.ipc_ns = copy_ipcs(k, current, flags, user_ns, old.ipc_ns)
        made.append(new.ipc_ns)
        new.pid_ns_for_children = copy_pid_ns(k, current, flags, user_ns, old.pid_ns_for_children)
        made.append(new.pid_ns_for_children)
        new.cgroup_ns = copy_cgroup_ns(k, current, flags, user_ns, old.cgroup_ns)
        made.append(new.cgroup_ns)
        new.net_ns = copy_net_ns(k, current, flags, user_ns, old.net_ns)
        made.append(new.net_ns)
        new.time_ns_for_children = copy_time_ns(k, current, flags, user_ns, old.time_ns_for_children)
        made.append(new.time_ns_for_children)
    except KernelError:
        for ns in reversed(made):
            if isinstance(ns, PidNamespace):
                put_pid_ns(k, ns)
            elif isinstance(ns, MntNamespace):
                put_mnt_ns(k, ns)
            else:
                put_ns(k, ns)
        k.kmem_cache_free("nsproxy")
        raise
    new.time_ns = get_ns(old.time_ns)
    return new


@traced
def copy_namespaces(k: Machine, current: Task, flags: int, tsk: Task) -> None:
    """Share the parent's nsproxy unless a namespace flag asks for new ones (or the time ns differs)."""
    old = tsk.nsproxy
    assert old is not None
    user_ns = tsk.cred.user_ns
    if not flags & CLONE_NS_FLAGS:
        if flags & CLONE_VM or old.time_ns_for_children is old.time_ns:
            get_nsproxy(old)
            return
    else:
        # Checked against the child's user namespace: a new one makes the caller its owner.
        if not ns_capable(current, user_ns, CAP_SYS_ADMIN):
            raise KernelError(E.EPERM, "copy_namespaces: CLONE_NEW* needs CAP_SYS_ADMIN in the child's user namespace")
    if flags & (CLONE_NEWIPC | CLONE_SYSVSEM) == CLONE_NEWIPC | CLONE_SYSVSEM:
        raise KernelError(E.EINVAL, "copy_namespaces: CLONE_NEWIPC with CLONE_SYSVSEM (the undo list would cross)")
    new = create_new_namespaces(k, current, flags, tsk, user_ns, tsk.fs)
    if not flags & CLONE_VM:
        timens_on_fork(k, new)
    tsk.nsproxy = new


def timens_on_fork(k: Machine, nsproxy: Nsproxy) -> None:
    """A child that does not share memory enters the time namespace made for children."""
    ns = nsproxy.time_ns_for_children
    if nsproxy.time_ns is ns:
        return
    get_ns(ns)
    put_ns(k, nsproxy.time_ns)
    nsproxy.time_ns = ns
    ns.frozen_offsets = True


@traced
def exit_nsproxy_namespaces(k: Machine, p: Task) -> None:
    switch_task_namespaces(k, p, None)


def switch_task_namespaces(k: Machine, p: Task, new: Nsproxy | None) -> None:
    old = p.nsproxy
    p.nsproxy = new
    if old is not None:
        put_nsproxy(k, old)


def make_init_nsproxy(
    mnt: MntNamespace,
    uts: UtsNamespace,
    ipc: IpcNamespace,
    pid: PidNamespace,
    cgroup: CgroupNamespace,
    net: NetNamespace,
    time: TimeNamespace,
) -> Nsproxy:
    ns = Nsproxy()
    ns.count = 1
    ns.mnt_ns, ns.uts_ns, ns.ipc_ns = mnt, uts, ipc
    ns.pid_ns_for_children = get_pid_ns(pid)
    ns.cgroup_ns, ns.net_ns = cgroup, net
    ns.time_ns = ns.time_ns_for_children = time
    time.count += 1
    return ns
