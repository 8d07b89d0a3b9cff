"""fs/fs_struct.c: root, cwd and umask, shared by CLONE_FS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.uapi import errno as E
from forklab.uapi.sched import CLONE_FS

if TYPE_CHECKING:
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.fs.vfs import Inode
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

Path = tuple["Mount", "Inode"]


class FsStruct:
    """struct fs_struct."""

    __slots__ = ("in_exec", "pwd", "root", "umask", "users")

    def __init__(self, root: Path, pwd: Path, umask: int) -> None:
        self.users = 1
        self.in_exec = False
        self.root = root
        self.pwd = pwd
        self.umask = umask


def copy_fs_struct(k: Machine, current: Task, old: FsStruct) -> FsStruct:
    k.kmem_cache_alloc(current, "fs_cache")
    return FsStruct(old.root, old.pwd, old.umask)


@traced
def copy_fs(k: Machine, current: Task, clone_flags: int, tsk: Task) -> None:
    fs = current.fs
    assert fs is not None
    if clone_flags & CLONE_FS:
        if fs.in_exec:
            raise KernelError(E.EAGAIN, "copy_fs: a thread sharing this fs_struct is in execve")
        fs.users += 1
        return
    tsk.fs = copy_fs_struct(k, current, fs)


def free_fs_struct(k: Machine, fs: FsStruct) -> None:
    k.kmem_cache_free("fs_cache")


@traced
def exit_fs(k: Machine, tsk: Task) -> None:
    fs = tsk.fs
    if fs is None:
        return
    tsk.fs = None
    fs.users -= 1
    if fs.users == 0:
        free_fs_struct(k, fs)
