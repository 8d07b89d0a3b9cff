"""Reading /proc: task states, the system call a task sleeps in, status files, NSpid."""

from __future__ import annotations

import fcntl
import os

NS_GET_PARENT = 0xB702  # ioctl on a namespace file: its parent's
PF_EXITING = 0x4  # task->flags: on its way out, not yet a zombie


def read_text(path: str, dir_fd: int | None = None) -> str | None:
    """The file's text, or None if it (or its task) is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        return os.read(fd, 65536).decode(errors="replace")
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)


def list_dir(path: str, dir_fd: int | None = None) -> list[str]:
    """Entries of a directory under ``dir_fd``; empty if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, ProcessLookupError):
        return []
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def parse_status(text: str) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict; values keep Linux's formatting, minus the tab."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def nspid(host_tid: int) -> list[int] | None:
    """The task's pid in each pid namespace, the host's first; None if it is gone."""
    text = read_text(f"/proc/{host_tid}/status")
    if text is None:
        return None
    return [int(p) for p in parse_status(text).get("NSpid", "").split()]


def stat(tid: int, proc: int | None = None) -> tuple[str, int] | None:
    """State letter (R, S, D, T, t, Z, X, ...) and flags from /proc/<tid>/stat, in the host's
    /proc or in the one open as ``proc``; None if the task is gone."""
    text = read_text(f"/proc/{tid}/stat" if proc is None else f"{tid}/stat", dir_fd=proc)
    if text is None:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[6])


def state(tid: int, proc: int | None = None) -> str | None:
    """The state letter alone; None if the task is gone."""
    found = stat(tid, proc)
    return None if found is None else found[0]


def sleeping_syscall(host_tid: int) -> int | None:
    """The system call a task is blocked in; -1 if blocked outside one; None if running or gone."""
    text = read_text(f"/proc/{host_tid}/syscall")
    if text is None or text.startswith("running"):
        return None
    return int(text.split()[0])


def pid_ns_chain(path: str, levels: int, dir_fd: int | None = None) -> list[int] | None:
    """Inode numbers of the pid namespace at ``path`` (a /proc/<tid>/ns/pid) and of the
    ``levels - 1`` above it, nearest first; None if the task is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        chain = [os.fstat(fd).st_ino]
        while len(chain) < levels:
            parent = fcntl.ioctl(fd, NS_GET_PARENT)
            os.close(fd)
            fd = parent
            chain.append(os.fstat(fd).st_ino)
        return chain
    finally:
        os.close(fd)
