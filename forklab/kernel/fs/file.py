"""fs/file.c and fs/file_table.c: struct file, the fd table, CLONE_FILES sharing and dup_fd."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.uapi import errno as E
from forklab.uapi.fcntl import O_ACCMODE, O_CLOEXEC
from forklab.uapi.resource import RLIMIT_NOFILE
from forklab.uapi.sched import CLONE_FILES

if TYPE_CHECKING:
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.fs.vfs import Inode
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

NR_OPEN_DEFAULT = 64  # BITS_PER_LONG
SYSCTL_NR_OPEN = 1024 * 1024
FMODE_READ = 1
FMODE_WRITE = 2


class File:
    """struct file: an open file description, shared by dup() and across fork."""

    __slots__ = ("f_count", "f_flags", "f_mode", "f_pos", "inode", "mnt", "private")

    def __init__(self, mnt: Mount | None, inode: Inode, flags: int, private: Any = None) -> None:
        self.f_count = 1
        self.mnt = mnt
        self.inode = inode
        self.f_flags = flags & ~O_CLOEXEC
        acc = flags & O_ACCMODE
        self.f_mode = (FMODE_READ if acc in (0, 2) else 0) | (FMODE_WRITE if acc in (1, 2) else 0)
        self.f_pos = 0
        self.private = private

    def __repr__(self) -> str:
        return f"<file {self.inode.name!r} refs={self.f_count}>"


class FilesStruct:
    """struct files_struct with its fdtable: open fds, close-on-exec bits, the table size."""

    __slots__ = ("close_on_exec", "count", "fd", "max_fds", "next_fd")

    def __init__(self) -> None:
        self.count = 1
        # fd -> file; None marks a number reserved by alloc_fd but not yet installed.
        self.fd: dict[int, File | None] = {}
        self.close_on_exec = 0  # a bitmap, bit n for fd n
        self.max_fds = NR_OPEN_DEFAULT
        self.next_fd = 0


def get_file(file: File) -> File:
    file.f_count += 1
    return file


def fput(k: Machine, file: File) -> None:
    """Drop a reference; the last one releases what the file holds."""
    file.f_count -= 1
    if file.f_count:
        return
    release = getattr(file.private, "release", None)
    if release is not None:
        release(k, file)
    k.kmem_cache_free("filp")


def alloc_file(
    k: Machine, current: Task | None, mnt: Mount | None, inode: Inode, flags: int, private: Any = None
) -> File:
    k.kmem_cache_alloc(current, "filp")
    return File(mnt, inode, flags, private)


def fdtable_size(nr: int) -> int:
    """alloc_fdtable(): the table size that holds fd ``nr``; a power-of-two multiple of 128 slots."""
    if nr < NR_OPEN_DEFAULT:
        return NR_OPEN_DEFAULT
    slots = 1024 // 8  # a kilobyte of file pointers
    units = nr // slots + 1
    size = 1 << (units - 1).bit_length()
    return min(size * slots, SYSCTL_NR_OPEN)


def expand_files(k: Machine, current: Task, files: FilesStruct, nr: int) -> None:
    if nr < files.max_fds:
        return
    if nr >= SYSCTL_NR_OPEN:
        raise KernelError(E.EMFILE, "expand_files: fd beyond nr_open")
    k.kmem_cache_alloc(current, "fdtable")
    k.kmem_cache_free("fdtable")
    files.max_fds = fdtable_size(nr)


def alloc_fd(k: Machine, current: Task, start: int, end: int, flags: int) -> int:
    """The lowest free fd at or above ``start`` and below ``end``, reserved (installed later)."""
    files = current.files
    assert files is not None
    fd = max(start, files.next_fd)
    table = files.fd
    while fd in table:
        fd += 1
    if fd >= end:
        raise KernelError(E.EMFILE, f"alloc_fd: no free descriptor below {end} (RLIMIT_NOFILE)")
    expand_files(k, current, files, fd)
    if start <= files.next_fd:
        files.next_fd = fd + 1
    table[fd] = None
    set_close_on_exec(files, fd, bool(flags & O_CLOEXEC))
    return fd


def get_unused_fd_flags(k: Machine, current: Task, flags: int) -> int:
    return alloc_fd(k, current, 0, current.signal.rlim[RLIMIT_NOFILE][0], flags)


def fd_install(current: Task, fd: int, file: File) -> None:
    files = current.files
    assert files is not None
    files.fd[fd] = file


def put_unused_fd(current: Task, fd: int) -> None:
    files = current.files
    assert files is not None
    files.fd.pop(fd, None)
    if fd < files.next_fd:
        files.next_fd = fd
    set_close_on_exec(files, fd, False)


def set_close_on_exec(files: FilesStruct, fd: int, on: bool) -> None:
    if on:
        files.close_on_exec |= 1 << fd
    else:
        files.close_on_exec &= ~(1 << fd)


def close_fd(k: Machine, current: Task, fd: int) -> None:
    files = current.files
    assert files is not None
    file = files.fd.get(fd)
    if file is None:
        raise KernelError(E.EBADF, f"close: fd {fd} is not open")
    put_unused_fd(current, fd)
    fput(k, file)


def fget(current: Task, fd: int) -> File:
    files = current.files
    file = files.fd.get(fd) if files is not None else None
    if file is None:
        raise KernelError(E.EBADF, f"fget: fd {fd} is not open")
    return file


@traced
def dup_fd(k: Machine, current: Task, old: FilesStruct) -> FilesStruct:
    """A copy of the table: every open file gains a reference; the size fits the highest fd."""
    k.kmem_cache_alloc(current, "files_cache")
    new = FilesStruct()
    if old.fd:
        highest = max(old.fd)
        # sane_fdtable_size(): open fds rounded up to whole words of the bitmap.
        open_files = (highest // NR_OPEN_DEFAULT + 1) * NR_OPEN_DEFAULT
        if open_files > NR_OPEN_DEFAULT:
            k.kmem_cache_alloc(current, "fdtable")
            k.kmem_cache_free("fdtable")
            new.max_fds = fdtable_size(open_files - 1)
    for fd, file in old.fd.items():
        # A number reserved but not installed (a sibling mid-open) stays free in the copy.
        if file is not None:
            file.f_count += 1
            new.fd[fd] = file
    new.close_on_exec = old.close_on_exec
    new.next_fd = old.next_fd
    return new


@traced
def copy_files(k: Machine, current: Task, clone_flags: int, tsk: Task, no_files: bool) -> None:
    """CLONE_FILES shares the table; otherwise the child gets a copy (none for io_uring workers)."""
    oldf = current.files
    if oldf is None:
        return
    if no_files:
        tsk.files = None
        return
    if clone_flags & CLONE_FILES:
        oldf.count += 1
        return
    tsk.files = dup_fd(k, current, oldf)


def put_files_struct(k: Machine, files: FilesStruct) -> None:
    files.count -= 1
    if files.count:
        return
    for file in files.fd.values():
        if file is not None:
            fput(k, file)
    files.fd.clear()
    k.kmem_cache_free("files_cache")


@traced
def exit_files(k: Machine, tsk: Task) -> None:
    files = tsk.files
    if files is None:
        return
    tsk.files = None
    put_files_struct(k, files)


def do_close_on_exec(k: Machine, files: FilesStruct) -> None:
    bits = files.close_on_exec
    for fd in [fd for fd, file in files.fd.items() if bits >> fd & 1 and file is not None]:
        file = files.fd.pop(fd)
        assert file is not None
        if fd < files.next_fd:
            files.next_fd = fd
        fput(k, file)
    files.close_on_exec = 0
