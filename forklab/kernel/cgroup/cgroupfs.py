"""kernel/cgroup/cgroup.c: what CLONE_INTO_CGROUP needs from a cgroup file descriptor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cgroup.cgroup import Cgroup
from forklab.kernel.errors import KernelError
from forklab.kernel.fs.file import fget
from forklab.kernel.fs.vfs import MAY_WRITE, inode_permission
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


def cgroup_from_fd(current: Task, fd: int) -> Cgroup:
    """The cgroup a directory fd names; EBADF for a bad fd or anything but a cgroup directory."""
    file = fget(current, fd)
    cgrp = file.inode.private
    if not isinstance(cgrp, Cgroup) or not file.inode.is_dir:
        raise KernelError(E.EBADF, f"cgroup_get_from_file: fd {fd} is not a cgroup directory")
    return cgrp


def cgroup_may_write(k: Machine, current: Task, dst: Cgroup) -> None:
    """The caller must be able to write cgroup.procs of the common ancestor of source and target."""
    assert current.cgroups is not None
    common = current.cgroups.dfl_cgrp
    while not is_descendant(dst, common):
        assert common.parent is not None
        common = common.parent
    inode_permission(current, common.procs, MAY_WRITE)


def is_descendant(cgrp: Cgroup, ancestor: Cgroup) -> bool:
    node: Cgroup | None = cgrp
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
