"""kernel/cgroup/cgroup.c: the cgroup v2 hierarchy as fork sees it.

Only the default hierarchy with the pids controller is modelled, so each cgroup has exactly
one css_set, and ``task.cgroups`` names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cgroup.pids import PIDS_MAX, pids_try_charge, pids_uncharge
from forklab.kernel.errors import KernelError
from forklab.kernel.fs.vfs import S_IFREG, Inode
from forklab.kernel.ftrace import traced
from forklab.uapi import errno as E
from forklab.uapi.sched import CLONE_INTO_CGROUP, CLONE_THREAD

if TYPE_CHECKING:
    from forklab.kernel.fork import KernelCloneArgs
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


class Cgroup:
    """struct cgroup with the pids controller's state folded in."""

    __slots__ = (
        "children",
        "css_set",
        "dead",
        "name",
        "parent",
        "pids_counter",
        "pids_events_max",
        "pids_max",
        "procs",
    )

    def __init__(self, name: str, parent: Cgroup | None) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, Cgroup] = {}
        self.pids_max = PIDS_MAX
        self.pids_counter = 0
        self.pids_events_max = 0
        self.dead = False
        self.css_set = CssSet(self)
        # cgroup.procs: writing it (or CLONE_INTO_CGROUP) needs write permission here.
        self.procs = Inode("cgroup.procs", S_IFREG | 0o644)

    def __repr__(self) -> str:
        return f"<cgroup {self.path()}>"

    def path(self) -> str:
        names = []
        node: Cgroup | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(names))


class CssSet:
    """struct css_set: what a task points at; here one per cgroup."""

    __slots__ = ("dfl_cgrp", "nr_tasks")

    def __init__(self, cgrp: Cgroup) -> None:
        self.dfl_cgrp = cgrp
        self.nr_tasks = 0


class CgroupRoot:
    """The default hierarchy."""

    def __init__(self) -> None:
        self.root = Cgroup("", None)


@traced
def cgroup_fork(k: Machine, child: Task) -> None:
    """Until cgroup_post_fork the child points at the root's css_set without being counted."""
    child.cgroups = k.cgroup_root.root.css_set


@traced
def cgroup_can_fork(k: Machine, current: Task, child: Task, kargs: KernelCloneArgs) -> None:
    """Pick the destination (the parent's cgroup, or CLONE_INTO_CGROUP's) and charge the pids controller."""
    assert current.cgroups is not None
    cset = current.cgroups
    if kargs.flags & CLONE_INTO_CGROUP:
        cset = cgroup_css_set_fork(k, current, kargs)
    pids_try_charge(cset.dfl_cgrp, 1)
    kargs.cset = cset


def cgroup_css_set_fork(k: Machine, current: Task, kargs: KernelCloneArgs) -> CssSet:
    """Resolve the fd of CLONE_INTO_CGROUP to a live cgroup the caller may move a task into."""
    from forklab.kernel.cgroup.cgroupfs import cgroup_from_fd, cgroup_may_write

    dst = cgroup_from_fd(current, kargs.cgroup)
    if dst.dead:
        raise KernelError(E.ENODEV, "cgroup_css_set_fork: the target cgroup has been removed")
    cgroup_may_write(k, current, dst)
    if kargs.flags & CLONE_THREAD:
        assert current.cgroups is not None
        if dst is not current.cgroups.dfl_cgrp:
            raise KernelError(E.EOPNOTSUPP, "cgroup_css_set_fork: a thread cannot start in another cgroup")
    return dst.css_set


def cgroup_cancel_fork(k: Machine, child: Task, kargs: KernelCloneArgs) -> None:
    if kargs.cset is not None:
        pids_uncharge(kargs.cset.dfl_cgrp, 1)
        kargs.cset = None


@traced
def cgroup_post_fork(k: Machine, child: Task, kargs: KernelCloneArgs) -> None:
    cset = kargs.cset
    assert cset is not None
    child.cgroups = cset
    cset.nr_tasks += 1
    kargs.cset = None


def cgroup_release(k: Machine, task: Task) -> None:
    """The task is reaped: it leaves its css_set and the pids charge is returned."""
    cset = task.cgroups
    if cset is None:
        return
    cset.nr_tasks -= 1
    pids_uncharge(cset.dfl_cgrp, 1)
    task.cgroups = None
