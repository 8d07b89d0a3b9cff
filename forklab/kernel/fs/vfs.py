"""A tiny in-memory VFS: inodes (which double as dentries here), path walking, permissions.

Regular files hold bytes; character devices and /proc entries hold an ``InodeOps`` whose
methods produce or consume the data. There are no hard links, so an inode has one name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import cap_raised
from forklab.kernel.errors import KernelError
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH

if TYPE_CHECKING:
    from forklab.kernel.fs.file import File
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFCHR = 0o020000
S_IFREG = 0o100000
S_IFIFO = 0o010000
S_IFLNK = 0o120000

MAY_EXEC = 1
MAY_WRITE = 2
MAY_READ = 4

# The magic an executable starts with; anything else makes execve fail with ENOEXEC.
ELF_MAGIC = b"\x7fELF"
PATH_MAX = 4096
MAX_SYMLINKS = 40


class InodeOps:
    """Behaviour of a special inode. A directory's ``lookup``/``names`` list entries made on demand."""

    seekable = True  # False: lseek gives ESPIPE (no llseek in its file_operations)

    def lookup(self, k: Machine, mnt: Mount, inode: Inode, name: str) -> Inode | None:
        return None

    def names(self, k: Machine, mnt: Mount, inode: Inode) -> list[str]:
        return []

    def permission(self, current: Task, inode: Inode, mask: int) -> None:
        """May ``current`` open ``inode`` for ``mask``; the ordinary owner/group/other rules by default."""
        inode_permission(current, inode, mask)

    def open(self, k: Machine, current: Task, file: File) -> None:
        """Called once when the file is opened (procfs snapshots its text here)."""

    def read(self, k: Machine, current: Task, file: File, count: int) -> bytes:
        raise KernelError(E.EINVAL, "read: this file cannot be read")

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        raise KernelError(E.EINVAL, "write: this file cannot be written")

    def readlink(self, k: Machine, current: Task, mnt: Mount, inode: Inode) -> str:
        raise KernelError(E.EINVAL, "readlink: not a symbolic link")

    def mkdir(self, k: Machine, current: Task, inode: Inode, name: str, mode: int) -> None:
        """A file system without ->mkdir refuses with EPERM."""
        raise KernelError(E.EPERM, f"vfs_mkdir: {inode.name!r} cannot hold new directories")

    def rmdir(self, k: Machine, current: Task, inode: Inode, victim: Inode) -> None:
        raise KernelError(E.EPERM, f"vfs_rmdir: {victim.name!r} cannot be removed")


class Inode:
    """An inode with its single name (a dentry, in kernel terms)."""

    __slots__ = ("children", "data", "gid", "ino", "mode", "name", "ops", "parent", "private", "uid")

    def __init__(
        self,
        name: str,
        mode: int,
        parent: Inode | None = None,
        ops: InodeOps | None = None,
        uid: int = 0,
        gid: int = 0,
        private: object = None,
    ) -> None:
        self.name = name
        self.mode = mode
        self.parent = parent
        self.ops = ops
        self.uid = uid
        self.gid = gid
        self.private = private
        self.children: dict[str, Inode] | None = {} if mode & S_IFMT == S_IFDIR and ops is None else None
        self.data = bytearray() if mode & S_IFMT == S_IFREG and ops is None else None
        self.ino = 0

    def __repr__(self) -> str:
        return f"<inode {self.name!r} {oct(self.mode)}>"

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def is_reg(self) -> bool:
        return self.mode & S_IFMT == S_IFREG

    @property
    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK


class Vfs:
    """The root filesystem's tree, built at boot."""

    def __init__(self) -> None:
        self.root = Inode("/", S_IFDIR | 0o755)
        self.next_ino = 1
        self.root.ino = self.next_ino
        # procfs's root, mounted on /proc in each mount namespace that has proc.
        self.proc_root: Inode

    def mkdir(self, parent: Inode, name: str, mode: int = 0o755) -> Inode:
        return self.add(parent, Inode(name, S_IFDIR | mode, parent))

    def add(self, parent: Inode, inode: Inode) -> Inode:
        assert parent.children is not None
        inode.parent = parent
        self.next_ino += 1
        inode.ino = self.next_ino
        parent.children[inode.name] = inode
        return inode

    def path(self, text: str) -> Inode:
        """An inode by absolute path, for building the tree (no mounts are crossed)."""
        inode = self.root
        for part in text.strip("/").split("/"):
            if part:
                assert inode.children is not None
                inode = inode.children[part]
        return inode


def inode_permission(current: Task, inode: Inode, mask: int) -> None:
    """generic_permission(): owner, group or other bits, or the DAC override capabilities."""
    cred = current.cred
    mode = inode.mode
    if cred.fsuid == inode.uid:
        bits = mode >> 6
    elif cred.fsgid == inode.gid or inode.gid in cred.group_info:
        bits = mode >> 3
    else:
        bits = mode
    if mask & ~bits & 7 == 0:
        return
    # The override capabilities count only over inodes whose owner the caller's namespace maps.
    privileged = cred.user_ns.uid_map.up(inode.uid) != -1
    # DAC_OVERRIDE allows all but executing a file that has no execute bit at all.
    overrides = not mask & MAY_EXEC or inode.is_dir or bool(mode & 0o111)
    if privileged and cap_raised(cred.cap_effective, CAP_DAC_OVERRIDE) and overrides:
        return
    reading = mask == MAY_READ or (inode.is_dir and mask & MAY_WRITE == 0)
    if privileged and cap_raised(cred.cap_effective, CAP_DAC_READ_SEARCH) and reading:
        return
    raise KernelError(E.EACCES, f"inode_permission: {inode.name!r} denies {_mask_text(mask)}")


def _mask_text(mask: int) -> str:
    return "|".join(name for bit, name in ((MAY_READ, "read"), (MAY_WRITE, "write"), (MAY_EXEC, "exec")) if mask & bit)
