"""fs/namespace.c: mounts and mount namespaces.

The model mounts only the root filesystem, procfs and cgroup2. A mount namespace is a copy of the
mount tree; the file system itself is shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import ns_capable
from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.fs.namei import path_lookup
from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.pid_namespace import get_pid_ns, put_pid_ns, task_active_pid_ns
from forklab.kernel.ucount import UCOUNT_MNT_NAMESPACES
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_SYS_ADMIN
from forklab.uapi.sched import CLONE_NEWNS

if TYPE_CHECKING:
    from forklab.kernel.fs.fs_struct import FsStruct
    from forklab.kernel.fs.vfs import Inode
    from forklab.kernel.machine import Machine
    from forklab.kernel.pid_namespace import PidNamespace
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace


class Mount:
    """struct mount: a file system's root inode attached at a mountpoint."""

    __slots__ = ("fstype", "mountpoint", "parent", "proc_ns", "root")

    def __init__(self, fstype: str, root: Inode, parent: Mount | None, mountpoint: Inode | None) -> None:
        self.fstype = fstype
        self.root = root
        self.parent = parent
        self.mountpoint = mountpoint
        # procfs shows the pid namespace it was mounted in.
        self.proc_ns: PidNamespace | None = None

    def __repr__(self) -> str:
        return f"<mount {self.fstype} on {self.mountpoint.name if self.mountpoint else '/'}>"


class MntNamespace(NsCommon):
    """struct mnt_namespace: its mount tree, as a list with the root mount first."""

    __slots__ = ("mounts",)
    ucount_type = UCOUNT_MNT_NAMESPACES
    cache = "mnt_namespace"
    kind = "mnt"
    mounts: list[Mount]

    @property
    def root(self) -> Mount:
        return self.mounts[0]

    def mounted_on(self, mnt: Mount, inode: Inode) -> Mount | None:
        """The mount whose mountpoint is ``inode`` inside ``mnt``, if any (the last one wins)."""
        found = None
        for child in self.mounts:
            if child.parent is mnt and child.mountpoint is inode:
                found = child
        return found


PROC_MNT_INIT_INO = 0xEFFFFFF8


def copy_mnt_ns(
    k: Machine, current: Task, flags: int, old: MntNamespace, user_ns: UserNamespace, new_fs: FsStruct | None
) -> MntNamespace:
    """A copy of the mount tree; the new task's root and cwd move to the copies of their mounts."""
    if not flags & CLONE_NEWNS:
        return get_ns(old)
    ns = create_ns(k, current, MntNamespace, user_ns)
    copies: dict[Mount, Mount] = {}
    ns.mounts = []
    for mnt in old.mounts:
        parent = copies.get(mnt.parent) if mnt.parent is not None else None
        copy = Mount(mnt.fstype, mnt.root, parent, mnt.mountpoint)
        if mnt.proc_ns is not None:
            copy.proc_ns = get_pid_ns(mnt.proc_ns)
        copies[mnt] = copy
        ns.mounts.append(copy)
    if new_fs is not None:
        root_mnt, root = new_fs.root
        pwd_mnt, pwd = new_fs.pwd
        new_fs.root = (copies.get(root_mnt, root_mnt), root)
        new_fs.pwd = (copies.get(pwd_mnt, pwd_mnt), pwd)
    return ns


def free_mnt_ns_mounts(k: Machine, ns: MntNamespace) -> None:
    """Drop what the namespace's mounts hold (procfs mounts hold their pid namespace)."""
    for mnt in ns.mounts:
        if mnt.proc_ns is not None:
            put_pid_ns(k, mnt.proc_ns)


def do_mount(k: Machine, current: Task, source: str, target: str, fstype: str) -> None:
    """mount(2) of procfs (it shows the caller's active pid namespace) or cgroup2."""

    if fstype not in ("proc", "cgroup2"):
        raise NotModelled(f"mount of a {fstype!r} file system (only proc and cgroup2 are modelled)")
    assert current.nsproxy is not None
    ns = current.nsproxy.mnt_ns
    if not ns_capable(current, ns.user_ns, CAP_SYS_ADMIN):
        raise KernelError(E.EPERM, "do_mount: CAP_SYS_ADMIN over the mount namespace's owner is required")
    mnt, inode = path_lookup(k, current, target)
    if not inode.is_dir:
        raise KernelError(E.ENOTDIR, f"do_mount: {target!r} is not a directory")
    if fstype == "cgroup2":
        from forklab.kernel.cgroup.cgroupfs import mount_cgroup2

        new = mount_cgroup2(k, current, mnt, inode)
    else:
        new = Mount("proc", k.vfs.proc_root, mnt, inode)
        new.proc_ns = task_active_pid_ns(current)
    do_add_mount(new, mnt, inode)
    if new.proc_ns is not None:
        get_pid_ns(new.proc_ns)
    ns.mounts.append(new)


def do_add_mount(new: Mount, mnt: Mount, inode: Inode) -> None:
    """The same superblock may not be mounted on the root of one of its own mounts. One cgroup2
    superblock serves every mount; procfs has one per pid namespace."""
    if inode is mnt.root and mnt.fstype == new.fstype and mnt.proc_ns is new.proc_ns:
        raise KernelError(E.EBUSY, f"do_add_mount: {new.fstype} is already mounted right there")
