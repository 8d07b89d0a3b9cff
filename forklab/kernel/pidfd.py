"""kernel/pid.c and fs/pidfs.c: the file behind a pidfd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.fs.file import File, alloc_file, fd_install, fget, get_unused_fd_flags, put_unused_fd
from forklab.kernel.fs.vfs import Inode, InodeOps
from forklab.kernel.ftrace import traced
from forklab.kernel.pid import (
    PIDTYPE_PGID,
    PIDTYPE_PID,
    PIDTYPE_TGID,
    Pid,
    find_pid_ns,
    get_pid,
    pid_has_task,
    pid_task,
    put_pid,
)
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.signal import group_send_sig_info, kill_pgrp_info
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi.fcntl import O_CLOEXEC, O_NONBLOCK, O_RDWR
from forklab.uapi.pidfd import (
    PIDFD_NONBLOCK,
    PIDFD_SIGNAL_PROCESS_GROUP,
    PIDFD_SIGNAL_THREAD,
    PIDFD_SIGNAL_THREAD_GROUP,
    PIDFD_THREAD,
)

PIDFD_SEND_SIGNAL_FLAGS = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP

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


@traced
def __pidfd_prepare(k: Machine, current: Task, pid: Pid, flags: int) -> tuple[int, File]:
    """Reserve an O_CLOEXEC fd and a pidfs file for ``pid``; the caller installs it."""
    fd = get_unused_fd_flags(k, current, O_CLOEXEC)
    try:
        file = pidfd_file_create(k, current, pid, flags)
    except KernelError:
        put_unused_fd(current, fd)
        raise
    return fd, file


def sys_pidfd_open(k: Machine, current: Task, nr: int, flags: int) -> int:
    """A pidfd for a live (or zombie) process, or with PIDFD_THREAD for one thread."""
    if flags & ~(PIDFD_NONBLOCK | PIDFD_THREAD):
        raise KernelError(E.EINVAL, f"pidfd_open: unknown flags {flags:#x}")
    if nr <= 0:
        raise KernelError(E.EINVAL, "pidfd_open: the pid must be positive")
    pid = find_pid_ns(nr, task_active_pid_ns(current))
    if pid is None:
        raise KernelError(E.ESRCH, f"pidfd_open: no process {nr}")
    if not k.has(Behaviour.PIDFD_OPEN_THREAD_ENOENT):
        if not pid_has_task(pid, PIDTYPE_PID if flags & PIDFD_THREAD else PIDTYPE_TGID):
            raise KernelError(E.EINVAL, f"pidfd_open: {nr} is no task's pid, or a thread's without PIDFD_THREAD")
    elif not pid_has_task(pid, PIDTYPE_PID):
        # The number lives on as a process group's or session's; its task was reaped.
        raise KernelError(E.ESRCH, f"pidfd_open: the task {nr} has been reaped")
    elif not flags & PIDFD_THREAD and not pid_has_task(pid, PIDTYPE_TGID):
        raise KernelError(E.ENOENT, f"pidfd_open: {nr} is a thread, not a process (a thread needs PIDFD_THREAD)")
    fd, file = __pidfd_prepare(k, current, pid, flags)
    fd_install(current, fd, file)
    return fd


def pidfd_get_pid(current: Task, fd: int) -> tuple[Pid, bool]:
    """The pid behind a pidfd, and whether the pidfd is non-blocking."""
    file = fget(current, fd)
    if not isinstance(file.private, PidfdInfo):
        raise KernelError(E.EBADF, f"fd {fd} is not a pidfd")
    return file.private.pid, bool(file.f_flags & O_NONBLOCK)


def sys_pidfd_send_signal(k: Machine, current: Task, pidfd: int, sig: int, info: int, flags: int) -> int:
    """Signal the process (or thread, or group) a pidfd names, without pid reuse races."""
    if flags & ~PIDFD_SEND_SIGNAL_FLAGS or (flags & (flags - 1)):
        raise KernelError(E.EINVAL, f"pidfd_send_signal: bad flags {flags:#x}")
    file = fget(current, pidfd)
    if not isinstance(file.private, PidfdInfo):
        raise KernelError(E.EBADF, f"pidfd_send_signal: fd {pidfd} is not a pidfd")
    pid = file.private.pid
    active = task_active_pid_ns(current)
    if not any(ns is active for _, ns in pid.numbers):
        raise KernelError(E.EINVAL, "pidfd_send_signal: the process is outside the caller's pid namespaces")
    kind = PIDTYPE_PID if file.f_flags & PIDFD_THREAD else PIDTYPE_TGID
    if flags == PIDFD_SIGNAL_THREAD:
        kind = PIDTYPE_PID
    elif flags == PIDFD_SIGNAL_THREAD_GROUP:
        kind = PIDTYPE_TGID
    elif flags == PIDFD_SIGNAL_PROCESS_GROUP:
        kind = PIDTYPE_PGID
    if info:
        raise NotModelled("pidfd_send_signal with a caller-made siginfo")
    if kind == PIDTYPE_PGID:
        kill_pgrp_info(k, current, sig, pid)
        return 0
    task = pid_task(pid, PIDTYPE_PID)
    if task is None:
        raise KernelError(E.ESRCH, "pidfd_send_signal: the process has been reaped")
    group_send_sig_info(k, current, sig, task, group=kind != PIDTYPE_PID)
    return 0
