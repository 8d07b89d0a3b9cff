"""The cgroup2 file system (kernel/cgroup/cgroup.c's cftypes over kernfs): directories and files.

Each cgroup has a directory inode and its interface files, owned by whoever made them (the
creator of the cgroup; for pids files, whoever enabled pids above it), as kernfs does.
Text is made by a read at offset 0, as seq_file does; a write hands the whole buffer over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.cgroup import cgroup as cg
from forklab.kernel.cgroup import pids
from forklab.kernel.cgroup.cgroup import Cgroup
from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.fs.file import fget
from forklab.kernel.fs.proc import SnapshotText
from forklab.kernel.fs.vfs import MAY_WRITE, S_IFDIR, S_IFREG, Inode, InodeOps, inode_permission
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.fs.file import File
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

Show = Callable[["Machine", "Task", Cgroup], str]
Store = Callable[["Machine", "Task", Cgroup, str], None]

# Files of the kernel's that the model does not have: opening one says so.
UNMODELLED = frozenset(
    {"cgroup.stat", "cgroup.freeze", "cgroup.kill", "cpu.stat", "cpu.stat.local", "cpu.pressure",
     "memory.pressure", "io.pressure", "irq.pressure", "cgroup.pressure"}
)  # fmt: skip


class CgroupFile(InodeOps):
    """One cftype: ``show`` makes its text, ``store`` takes a write; ``delegatable`` files may be
    written in a namespace's own root cgroup under nsdelegate."""

    def __init__(self, show: Show | None, store: Store | None, delegatable: bool = False) -> None:
        self.show = show
        self.store = store
        self.delegatable = delegatable

    def mode(self) -> int:
        return (0o444 if self.show else 0) | (0o200 if self.store else 0)

    def read(self, k: Machine, current: Task, file: File, count: int) -> bytes:
        cgrp = live_cgroup(file)
        if self.show is None:
            raise KernelError(E.EINVAL, "read: this cgroup file cannot be read")
        if file.f_pos == 0 or file.private is None:
            file.private = SnapshotText(self.show(k, current, cgrp).encode())
        data: bytes = file.private.text[file.f_pos : file.f_pos + count]
        file.f_pos += len(data)
        return data

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        cgrp = live_cgroup(file)
        if not data:
            return 0
        assert current.nsproxy is not None and self.store is not None
        ns = current.nsproxy.cgroup_ns
        boundary = ns is not k.init_nsproxy.cgroup_ns and ns.root_cset.dfl_cgrp is cgrp
        if cgrp.root.ns_delegate and not self.delegatable and boundary:
            raise KernelError(E.EPERM, "cgroup_file_write: the namespace's root cgroup is its delegation boundary")
        self.store(k, current, cgrp, data.decode(errors="replace"))
        file.f_pos += len(data)
        return len(data)


class UnmodelledFile(InodeOps):
    def open(self, k: Machine, current: Task, file: File) -> None:
        raise NotModelled(f"cgroup file {file.inode.name} is not modelled")


class CgroupDir(InodeOps):
    """A cgroup's directory: its child cgroups and its files; mkdir and rmdir make and remove cgroups."""

    def lookup(self, k: Machine, mnt: Mount, inode: Inode, name: str) -> Inode | None:
        cgrp = inode.private
        assert isinstance(cgrp, Cgroup)
        child = cgrp.children.get(name)
        if child is not None:
            return cgroup_kn(k, child)
        if name in UNMODELLED:
            return Inode(name, S_IFREG | 0o444, inode, UnmodelledFile(), private=cgrp)
        return cgrp.files.get(name)

    def names(self, k: Machine, mnt: Mount, inode: Inode) -> list[str]:
        cgrp = inode.private
        assert isinstance(cgrp, Cgroup)
        return [*cgrp.files, *cgrp.children]

    def mkdir(self, k: Machine, current: Task, inode: Inode, name: str, mode: int) -> None:
        parent = inode.private
        assert isinstance(parent, Cgroup)
        child = cg.cgroup_mkdir(k, parent, name)
        cgroup_kn(k, child, current.cred.fsuid, current.cred.fsgid, mode)

    def rmdir(self, k: Machine, current: Task, inode: Inode, victim: Inode) -> None:
        cgrp = victim.private
        assert isinstance(cgrp, Cgroup)
        cg.cgroup_rmdir(k, cgrp)


def cgroup_kn(k: Machine, cgrp: Cgroup, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Inode:
    """The cgroup's directory, made with its files on first use (by ``uid``:``gid``)."""
    if cgrp.kn is None:
        parent = cgrp.parent.kn if cgrp.parent is not None else None
        cgrp.kn = Inode(cgrp.name or "/", S_IFDIR | mode, parent, CgroupDir(), uid, gid, private=cgrp)
        populate(k, cgrp, uid, gid)
    return cgrp.kn


def populate(k: Machine, cgrp: Cgroup, uid: int, gid: int) -> None:
    """Add the files the cgroup should have and lack (owned by ``uid``:``gid``), drop the others."""
    wanted = {name: ops for name, ops in FILES.items() if not (cgrp.parent is None and name in NOT_ON_ROOT)}
    if cgrp.pids is not None and cgrp.parent is not None:
        wanted.update((name, ops) for name, ops in PIDS_FILES.items() if has_file(k, name))
    for name in [name for name in cgrp.files if name not in wanted]:
        del cgrp.files[name]
    for name, ops in wanted.items():
        if name not in cgrp.files:
            cgrp.files[name] = Inode(name, S_IFREG | ops.mode(), cgrp.kn, ops, uid, gid, private=cgrp)


def live_cgroup(file: File) -> Cgroup:
    """The file's cgroup; ENODEV once the cgroup or the file is gone (kernfs_get_active fails)."""
    cgrp = file.inode.private
    assert isinstance(cgrp, Cgroup)
    if cgrp.dead or cgrp.files.get(file.inode.name) is not file.inode:
        raise KernelError(E.ENODEV, f"kernfs: {file.inode.name} was removed")
    return cgrp


def cgroup_get_from_fd(current: Task, fd: int) -> Cgroup:
    """CLONE_INTO_CGROUP's fd: EBADF for anything but a cgroup2 directory, ENOENT once removed."""
    file = fget(current, fd)
    cgrp = file.inode.private
    if not isinstance(cgrp, Cgroup) or not file.inode.is_dir:
        raise KernelError(E.EBADF, f"cgroup_get_from_file: fd {fd} is not a cgroup directory")
    if cgrp.dead:
        raise KernelError(E.ENOENT, f"css_tryget_online_from_dir: cgroup of fd {fd} was removed")
    return cgrp


def cgroup_may_write(k: Machine, current: Task, cgrp: Cgroup) -> None:
    """Write permission on the cgroup's cgroup.procs (made, root's, if no mount showed it yet)."""
    cgroup_kn(k, cgrp)
    inode_permission(current, cgrp.files["cgroup.procs"], MAY_WRITE)


# ---- the files' contents --------------------------------------------------------------------------


def mask_text(mask: frozenset[str]) -> str:
    """Names, a space between them, a newline only after at least one."""
    return " ".join(sorted(mask)) + "\n" if mask else ""


def procs_show(k: Machine, current: Task, cgrp: Cgroup) -> str:
    """Group leaders, the live first, then dying leaders whose threads live on; the whole thread
    subtree of a thread root; 0 for a task outside the reader's pid namespace."""
    from forklab.kernel.pid import PIDTYPE_PID, task_pid_vnr

    if cg.cgroup_is_threaded(cgrp):
        raise KernelError(E.EOPNOTSUPP, "cgroup_procs_start: a threaded cgroup has no processes of its own")
    lines = []
    for node in cgrp.descendants():
        if node is not cgrp and node.dom_cgrp is not cgrp:
            continue
        leaders = [t for t in node.tasks if t.group_leader is t]
        leaders += [t for t in node.dying if t.group_leader is t and t.signal.live]
        lines += [f"{task_pid_vnr(t, PIDTYPE_PID, current)}\n" for t in leaders]
    return "".join(lines)


def threads_show(k: Machine, current: Task, cgrp: Cgroup) -> str:
    from forklab.kernel.pid import PIDTYPE_PID, task_pid_vnr

    return "".join(f"{task_pid_vnr(t, PIDTYPE_PID, current)}\n" for t in cgrp.tasks)


def procs_store(threadgroup: bool) -> Store:
    def store(k: Machine, current: Task, cgrp: Cgroup, text: str) -> None:
        task = cgroup_procs_write_start(current, text, threadgroup)
        assert task.cgroups is not None
        cg.cgroup_attach_permissions(k, current, task.cgroups.dfl_cgrp, cgrp, threadgroup)
        cg.cgroup_attach_task(k, cgrp, task, threadgroup)

    return store


def cgroup_procs_write_start(current: Task, text: str, threadgroup: bool) -> Task:
    """The task a cgroup.procs or cgroup.threads write names: 0 is the writer itself."""
    from forklab.kernel.pid import find_task_by_pid_ns
    from forklab.kernel.pid_namespace import task_active_pid_ns
    from forklab.kernel.task import PF_NO_SETAFFINITY

    try:
        nr = cg.kstrtoll(text.strip())
    except KernelError:
        nr = -1
    if not 0 <= nr <= cg.INT_MAX:
        raise KernelError(E.EINVAL, f"cgroup_procs_write_start: {text.strip()!r} is not a pid")
    task = find_task_by_pid_ns(nr, task_active_pid_ns(current)) if nr else current
    if task is None:
        raise KernelError(E.ESRCH, f"cgroup_procs_write_start: no task {nr}")
    if threadgroup:
        task = task.group_leader
    if task.flags & PF_NO_SETAFFINITY:
        raise KernelError(E.EINVAL, "cgroup_procs_write_start: a kernel thread bound to its CPUs stays put")
    return task


def events_show(k: Machine, current: Task, cgrp: Cgroup) -> str:
    return f"populated {int(cg.cgroup_is_populated(cgrp))}\nfrozen 0\n"


def limit_show(attr: str) -> Show:
    def show(k: Machine, current: Task, cgrp: Cgroup) -> str:
        value = getattr(cgrp, attr)
        return "max\n" if value >= cg.INT_MAX else f"{value}\n"

    return show


def limit_store(attr: str) -> Store:
    """ "max" or an int from 0 (kstrtoint's syntax; a negative one is ERANGE too)."""

    def store(k: Machine, current: Task, cgrp: Cgroup, text: str) -> None:
        text = text.strip()
        value = cg.INT_MAX if text == "max" else cg.kstrtoll(text)
        if not 0 <= value <= cg.INT_MAX:
            raise KernelError(E.ERANGE, f"cgroup_{attr}_write: {text!r} is not an int from 0")
        setattr(cgrp, attr, value)

    return store


def subtree_control_store(k: Machine, current: Task, cgrp: Cgroup, text: str) -> None:
    cg.cgroup_subtree_control_write(k, cgrp, text)
    for child in cgrp.descendants()[1:]:
        populate(k, child, current.cred.fsuid, current.cred.fsgid)


def pids_of(cgrp: Cgroup) -> pids.PidsCss:
    assert cgrp.pids is not None
    return cgrp.pids


FILES: dict[str, CgroupFile] = {
    "cgroup.type": CgroupFile(lambda k, t, c: cg.cgroup_type_text(c), lambda k, t, c, s: cg.cgroup_type_write(k, c, s)),
    "cgroup.procs": CgroupFile(procs_show, procs_store(True), delegatable=True),
    "cgroup.threads": CgroupFile(threads_show, procs_store(False), delegatable=True),
    "cgroup.controllers": CgroupFile(lambda k, t, c: mask_text(cg.cgroup_control(c)), None),
    "cgroup.subtree_control": CgroupFile(lambda k, t, c: mask_text(c.subtree_control), subtree_control_store, True),
    "cgroup.events": CgroupFile(events_show, None),
    "cgroup.max.descendants": CgroupFile(limit_show("max_descendants"), limit_store("max_descendants")),
    "cgroup.max.depth": CgroupFile(limit_show("max_depth"), limit_store("max_depth")),
}
NOT_ON_ROOT = frozenset({"cgroup.type", "cgroup.events"})
PIDS_FILE_SINCE = {"pids.peak": Behaviour.PIDS_PEAK, "pids.events.local": Behaviour.PIDS_EVENTS_HIERARCHICAL}


def has_file(k: Machine, name: str) -> bool:
    since = PIDS_FILE_SINCE.get(name)
    return since is None or k.has(since)


def pids_events(local: bool) -> Show:
    """Before the counters were hierarchical, pids.events counted the forks refused in its css."""

    def show(k: Machine, current: Task, cgrp: Cgroup) -> str:
        local_events = cgrp.root.pids_localevents or not k.has(Behaviour.PIDS_EVENTS_HIERARCHICAL)
        return pids.pids_events_show(pids_of(cgrp), local, local_events)

    return show


PIDS_FILES: dict[str, CgroupFile] = {
    "pids.max": CgroupFile(lambda k, t, c: pids.pids_max_show(pids_of(c)),
                           lambda k, t, c, s: pids.pids_max_write(pids_of(c), s)),
    "pids.current": CgroupFile(lambda k, t, c: f"{pids_of(c).counter}\n", None),
    "pids.peak": CgroupFile(lambda k, t, c: f"{pids_of(c).watermark}\n", None),
    "pids.events": CgroupFile(pids_events(False), None),
    "pids.events.local": CgroupFile(pids_events(True), None),
}  # fmt: skip


def mount_cgroup2(k: Machine, current: Task, mnt: Mount, inode: Inode) -> Mount:
    """cgroup2's root is the root cgroup of the caller's cgroup namespace; the mount needs
    CAP_SYS_ADMIN over that namespace's owner."""
    from forklab.kernel.cred import ns_capable
    from forklab.kernel.fs.namespace import Mount
    from forklab.uapi.capability import CAP_SYS_ADMIN

    assert current.nsproxy is not None
    ns = current.nsproxy.cgroup_ns
    if not ns_capable(current, ns.user_ns, CAP_SYS_ADMIN):
        raise KernelError(E.EPERM, "mount_capable: CAP_SYS_ADMIN over the cgroup namespace's owner is required")
    return Mount("cgroup2", cgroup_kn(k, ns.root_cset.dfl_cgrp), mnt, inode)
