"""fs/namei.c: turning a path into (mount, inode), crossing mounts and following symlinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.fs.vfs import MAX_SYMLINKS, MAY_EXEC, PATH_MAX, Inode, inode_permission
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.fs.fs_struct import Path
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


def lookup_child(k: Machine, mnt: Mount, inode: Inode, name: str) -> Inode | None:
    if inode.children is not None:
        return inode.children.get(name)
    if inode.ops is not None:
        return inode.ops.lookup(k, mnt, inode, name)
    return None


def walk(k: Machine, current: Task, path: str, follow: bool = True, depth: int = 0) -> tuple[Path, Path | None, str]:
    """Walk all of ``path``; returns (its parent, the final path or None if it does not exist, last name)."""
    if not path:
        raise KernelError(E.ENOENT, "path_lookup: empty path")
    if len(path) >= PATH_MAX:
        raise KernelError(E.ENAMETOOLONG, "path_lookup: path longer than PATH_MAX")
    fs = current.fs
    nsproxy = current.nsproxy
    assert fs is not None and nsproxy is not None
    mnt_ns = nsproxy.mnt_ns
    here: Path = fs.root if path.startswith("/") else fs.pwd
    parts = [p for p in path.split("/") if p]
    if not parts:
        return here, here, "/"
    parent = here
    for index, name in enumerate(parts):
        last = index == len(parts) - 1
        mnt, inode = here
        if not inode.is_dir:
            raise KernelError(E.ENOTDIR, f"path_lookup: {inode.name!r} in {path!r} is not a directory")
        inode_permission(current, inode, MAY_EXEC)
        parent = here
        if name == ".":
            continue
        if name == "..":
            here = step_up(fs.root, here)
            continue
        child = lookup_child(k, mnt, inode, name)
        if child is None:
            if last:
                return parent, None, name
            raise KernelError(E.ENOENT, f"path_lookup: {path!r} does not exist")
        here = (mnt, child)
        mounted = mnt_ns.mounted_on(mnt, child)
        while mounted is not None:
            here = (mounted, mounted.root)
            mounted = mnt_ns.mounted_on(mounted, mounted.root)
        if here[1].is_symlink and (follow or not last):
            if depth >= MAX_SYMLINKS:
                raise KernelError(E.ELOOP, f"path_lookup: too many symbolic links in {path!r}")
            assert here[1].ops is not None
            target = here[1].ops.readlink(k, current, here[0], here[1])
            rest = "/".join(parts[index + 1 :])
            base = target if target.startswith("/") else _path_of(parent, target)
            return walk(k, current, base + ("/" + rest if rest else ""), follow, depth + 1)
    return parent, here, parts[-1]


def _path_of(parent: Path, relative: str) -> str:
    names = []
    inode: Inode | None = parent[1]
    mnt: Mount | None = parent[0]
    while mnt is not None and inode is not None:
        if inode is mnt.root:
            inode, mnt = mnt.mountpoint, mnt.parent
            continue
        names.append(inode.name)
        inode = inode.parent
    return "/" + "/".join(reversed(names)) + "/" + relative


def step_up(root: Path, here: Path) -> Path:
    """'..': stop at the task's root, climb out of a mount at its root."""
    mnt, inode = here
    while True:
        if here == root:
            return here
        mountpoint = mnt.mountpoint
        if inode is mnt.root and mnt.parent is not None and mountpoint is not None:
            mnt, inode = mnt.parent, mountpoint
            here = (mnt, inode)
            continue
        break
    if inode.parent is None:
        return here
    return (mnt, inode.parent)


def path_lookup(k: Machine, current: Task, path: str, follow: bool = True) -> Path:
    """The path that ``path`` names; ENOENT if it does not exist."""
    _, found, _ = walk(k, current, path, follow)
    if found is None:
        raise KernelError(E.ENOENT, f"path_lookup: {path!r} does not exist")
    return found


def d_path(root: Path, here: Path) -> str:
    """The path of ``here`` as seen from ``root`` (getcwd and /proc/<pid>/cwd)."""
    names: list[str] = []
    mnt, inode = here
    while (mnt, inode) != root:
        if inode is mnt.root:
            above, mountpoint = mnt.parent, mnt.mountpoint
            if above is None or mountpoint is None:
                return "(unreachable)/" + "/".join(reversed(names))
            mnt, inode = above, mountpoint
            continue
        names.append(inode.name)
        parent = inode.parent
        if parent is None:
            return "(unreachable)/" + "/".join(reversed(names))
        inode = parent
    return "/" + "/".join(reversed(names))


def do_mkdirat(k: Machine, current: Task, path: str, mode: int) -> None:
    """mkdir(2): EEXIST before the permission check, EPERM where the file system makes no directories."""
    from forklab.kernel.fs.vfs import MAY_WRITE, S_IFDIR

    (_, parent), found, name = walk(k, current, path.rstrip("/") or "/", follow=False)
    if found is not None:
        raise KernelError(E.EEXIST, f"mkdir: {path!r} exists")
    inode_permission(current, parent, MAY_WRITE | MAY_EXEC)
    fs = current.fs
    assert fs is not None
    mode = mode & ~fs.umask & 0o1777
    if parent.ops is not None:
        parent.ops.mkdir(k, current, parent, name, mode)
        return
    if parent.children is None:
        raise KernelError(E.EPERM, f"vfs_mkdir: {parent.name!r} cannot hold new directories")
    k.vfs.add(parent, Inode(name, S_IFDIR | mode, uid=current.cred.fsuid, gid=current.cred.fsgid))


def do_rmdir(k: Machine, current: Task, path: str) -> None:
    """rmdir(2): the last name may not be '.' or '..'; a mountpoint is busy; a directory must be empty."""
    from forklab.kernel.fs.vfs import MAY_WRITE

    last = path.rstrip("/").rpartition("/")[2]
    if last == ".":
        raise KernelError(E.EINVAL, "rmdir: the last component is '.'")
    if last == "..":
        raise KernelError(E.ENOTEMPTY, "rmdir: the last component is '..'")
    (_, parent), found, _ = walk(k, current, path.rstrip("/") or "/", follow=False)
    if found is None:
        raise KernelError(E.ENOENT, f"rmdir: {path!r} does not exist")
    mnt, victim = found
    inode_permission(current, parent, MAY_WRITE | MAY_EXEC)
    if victim is mnt.root:
        raise KernelError(E.EBUSY, f"rmdir: {path!r} is a mountpoint")
    if not victim.is_dir:
        raise KernelError(E.ENOTDIR, f"rmdir: {path!r} is not a directory")
    if parent.ops is not None:
        parent.ops.rmdir(k, current, parent, victim)
        return
    if victim.children:
        raise KernelError(E.ENOTEMPTY, f"rmdir: {path!r} is not empty")
    assert parent.children is not None
    del parent.children[victim.name]
