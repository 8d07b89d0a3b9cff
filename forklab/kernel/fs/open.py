"""fs/open.c, fs/read_write.c, fs/fcntl.c, fs/d_path.c: the file system calls the model offers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.fs.file import (
    FMODE_READ,
    FMODE_WRITE,
    File,
    alloc_fd,
    alloc_file,
    close_fd,
    fd_install,
    fget,
    get_file,
    get_unused_fd_flags,
    put_unused_fd,
    set_close_on_exec,
)
from forklab.kernel.fs.namei import d_path, path_lookup, walk
from forklab.kernel.fs.vfs import MAY_EXEC, MAY_READ, MAY_WRITE, S_IFIFO, S_IFMT, S_IFREG, Inode, inode_permission
from forklab.uapi import errno as E
from forklab.uapi.fcntl import (
    F_DUPFD,
    F_DUPFD_CLOEXEC,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    FD_CLOEXEC,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_PATH,
    O_TRUNC,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
)
from forklab.uapi.resource import RLIMIT_NOFILE

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

# F_SETFL may change only these.
SETFL_MASK = O_APPEND | O_NONBLOCK


def do_sys_open(k: Machine, current: Task, path: str, flags: int, mode: int = 0o644) -> int:
    parent, found, name = walk(k, current, path, follow=not flags & O_NOFOLLOW)
    if found is None:
        if not flags & O_CREAT:
            raise KernelError(E.ENOENT, f"do_sys_open: {path!r} does not exist")
        found = create_file(k, current, parent, name, mode)
    elif flags & O_CREAT and flags & O_EXCL:
        raise KernelError(E.EEXIST, f"do_sys_open: {path!r} exists (O_CREAT|O_EXCL)")
    mnt, inode = found
    if inode.is_symlink and flags & O_NOFOLLOW:
        raise KernelError(E.ELOOP, f"do_sys_open: {path!r} is a symbolic link (O_NOFOLLOW)")
    if flags & O_DIRECTORY and not inode.is_dir:
        raise KernelError(E.ENOTDIR, f"do_sys_open: {path!r} is not a directory (O_DIRECTORY)")
    acc = flags & O_ACCMODE
    if not flags & O_PATH:
        if inode.is_dir and acc != 0:
            raise KernelError(E.EISDIR, f"do_sys_open: {path!r} is a directory")
        mask = (MAY_READ if acc in (0, 2) else 0) | (MAY_WRITE if acc in (1, 2) else 0)
        if inode.ops is not None:
            inode.ops.permission(current, inode, mask)
        else:
            inode_permission(current, inode, mask)
    fd = get_unused_fd_flags(k, current, flags)
    try:
        file = alloc_file(k, current, mnt, inode, flags)
    except KernelError:
        put_unused_fd(current, fd)
        raise
    if inode.ops is not None and not flags & O_PATH:
        inode.ops.open(k, current, file)
    if flags & O_TRUNC and file.f_mode & FMODE_WRITE and inode.data is not None:
        del inode.data[:]
    fd_install(current, fd, file)
    return fd


def create_file(k: Machine, current: Task, parent: tuple[object, Inode], name: str, mode: int) -> tuple:  # type: ignore[type-arg]
    mnt, directory = parent
    if directory.children is None:
        raise KernelError(E.EACCES, f"do_sys_open: cannot create {name!r} here")
    inode_permission(current, directory, MAY_WRITE | MAY_EXEC)
    fs = current.fs
    assert fs is not None
    inode = Inode(name, S_IFREG | (mode & ~fs.umask & 0o7777), uid=current.cred.fsuid, gid=current.cred.fsgid)
    k.vfs.add(directory, inode)
    return (mnt, inode)


def ksys_close(k: Machine, current: Task, fd: int) -> None:
    close_fd(k, current, fd)


def ksys_dup(k: Machine, current: Task, fd: int) -> int:
    return dupfd_from(k, current, fd, 0, 0)


def dupfd_from(k: Machine, current: Task, fd: int, start: int, flags: int) -> int:
    file = fget(current, fd)
    limit = current.signal.rlim[RLIMIT_NOFILE][0]
    if start >= limit:
        raise KernelError(E.EINVAL, f"fcntl: F_DUPFD from {start} is beyond RLIMIT_NOFILE")
    new = alloc_fd(k, current, start, limit, flags)
    fd_install(current, new, get_file(file))
    return new


def do_fcntl(k: Machine, current: Task, fd: int, cmd: int, arg: int) -> int:
    file = fget(current, fd)
    files = current.files
    assert files is not None
    if cmd == F_DUPFD:
        return dupfd_from(k, current, fd, arg, 0)
    if cmd == F_DUPFD_CLOEXEC:
        return dupfd_from(k, current, fd, arg, O_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if files.close_on_exec >> fd & 1 else 0
    if cmd == F_SETFD:
        set_close_on_exec(files, fd, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        acc = {FMODE_READ: 0, FMODE_WRITE: 1, FMODE_READ | FMODE_WRITE: 2}.get(file.f_mode, 0)
        return (file.f_flags & ~O_ACCMODE) | acc
    if cmd == F_SETFL:
        file.f_flags = (file.f_flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        return 0
    raise KernelError(E.EINVAL, f"fcntl: command {cmd} is not modelled")


def ksys_read(k: Machine, current: Task, fd: int, count: int) -> bytes:
    file = fget(current, fd)
    if not file.f_mode & FMODE_READ:
        raise KernelError(E.EBADF, f"read: fd {fd} is not open for reading")
    if count < 0:
        raise KernelError(E.EINVAL, "read: negative count")
    inode = file.inode
    if inode.is_dir:
        raise KernelError(E.EISDIR, f"read: fd {fd} is a directory")
    if inode.ops is not None:
        return inode.ops.read(k, current, file, count)
    assert inode.data is not None
    data = bytes(inode.data[file.f_pos : file.f_pos + count])
    file.f_pos += len(data)
    return data


def ksys_write(k: Machine, current: Task, fd: int, data: bytes) -> int:
    file = fget(current, fd)
    if not file.f_mode & FMODE_WRITE:
        raise KernelError(E.EBADF, f"write: fd {fd} is not open for writing")
    inode = file.inode
    if inode.ops is not None:
        return inode.ops.write(k, current, file, data)
    assert inode.data is not None
    if file.f_flags & O_APPEND:
        file.f_pos = len(inode.data)
    end = file.f_pos + len(data)
    if file.f_pos > len(inode.data):
        inode.data.extend(bytes(file.f_pos - len(inode.data)))
    inode.data[file.f_pos : end] = data
    file.f_pos = end
    return len(data)


def ksys_lseek(k: Machine, current: Task, fd: int, offset: int, whence: int) -> int:
    file = fget(current, fd)
    inode = file.inode
    if inode.mode & S_IFMT == S_IFIFO or (inode.ops is not None and not inode.ops.seekable):
        raise KernelError(E.ESPIPE, "lseek: the file cannot seek (a pipe, a pidfd)")
    size = len(inode.data) if inode.data is not None else len(getattr(file.private, "text", b""))
    base = {SEEK_SET: 0, SEEK_CUR: file.f_pos, SEEK_END: size}.get(whence)
    if base is None:
        raise KernelError(E.EINVAL, f"lseek: whence {whence} is not SEEK_SET, SEEK_CUR or SEEK_END")
    pos = base + offset
    if pos < 0:
        raise KernelError(E.EINVAL, "lseek: the resulting offset is negative")
    file.f_pos = pos
    return pos


def ksys_chdir(k: Machine, current: Task, path: str) -> None:
    found = path_lookup(k, current, path)
    if not found[1].is_dir:
        raise KernelError(E.ENOTDIR, f"chdir: {path!r} is not a directory")
    inode_permission(current, found[1], MAY_EXEC)
    assert current.fs is not None
    current.fs.pwd = found


def ksys_getcwd(k: Machine, current: Task) -> str:
    fs = current.fs
    assert fs is not None
    return d_path(fs.root, fs.pwd)


def ksys_umask(k: Machine, current: Task, mask: int) -> int:
    fs = current.fs
    assert fs is not None
    old = fs.umask
    fs.umask = mask & 0o777
    return old


def ksys_readlink(k: Machine, current: Task, path: str) -> str:
    mnt, inode = path_lookup(k, current, path, follow=False)
    if not inode.is_symlink or inode.ops is None:
        raise KernelError(E.EINVAL, f"readlink: {path!r} is not a symbolic link")
    return inode.ops.readlink(k, current, mnt, inode)


def file_text(file: File) -> bytes:
    """The whole content of a regular file (for execve's magic check)."""
    data = file.inode.data
    return bytes(data) if data is not None else b""
