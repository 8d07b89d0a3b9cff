"""kernel/pid.c and fs/pidfs.c: the file behind a pidfd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.fs.file import File, alloc_file
from forklab.kernel.fs.vfs import Inode, InodeOps
from forklab.kernel.pid import Pid, get_pid, put_pid
from forklab.uapi.fcntl import O_RDWR

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


class PidfdInfo:
    """What a pidfd file holds: a reference on the pid (and whether it names a thread)."""

    __slots__ = ("pid",)

    def __init__(self, pid: Pid) -> None:
        self.pid = pid

    def release(self, k: Machine, file: File) -> None:
        put_pid(k, self.pid)


class PidfdOps(InodeOps):
    seekable = False


PIDFD_INODE = Inode("[pidfd]", 0o600, ops=PidfdOps())


def pidfd_file_create(k: Machine, current: Task, pid: Pid, flags: int) -> File:
    """A pidfs file open O_RDWR, plus PIDFD_THREAD/PIDFD_NONBLOCK from ``flags``."""
    file = alloc_file(k, current, None, PIDFD_INODE, O_RDWR | flags, PidfdInfo(pid))
    get_pid(pid)
    return file
