"""fs/pipe.c: anonymous pipes, whose reads and writes can block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.fs.file import (
    FMODE_READ,
    FMODE_WRITE,
    File,
    alloc_file,
    fd_install,
    fput,
    get_unused_fd_flags,
    put_unused_fd,
)
from forklab.kernel.fs.vfs import S_IFIFO, Inode, InodeOps
from forklab.kernel.signal import send_sig
from forklab.kernel.wait import WaitQueue, wake_up
from forklab.uapi import errno as E
from forklab.uapi.fcntl import O_NONBLOCK, O_RDONLY, O_WRONLY
from forklab.uapi.signal import SIGPIPE

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

PIPE_DEF_BUFFERS = 16
PIPE_CAPACITY = PIPE_DEF_BUFFERS * 4096
PIPE_BUF = 4096


class PipeInodeInfo:
    """struct pipe_inode_info: the buffer and who still holds each end."""

    __slots__ = ("buffer", "rd_wait", "readers", "wr_wait", "writers")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.readers = 0
        self.writers = 0
        self.rd_wait = WaitQueue()
        self.wr_wait = WaitQueue()


class PipeEnd:
    """What a pipe file points at; closing the last reference drops one reader or writer."""

    __slots__ = ("pipe", "writer")

    def __init__(self, pipe: PipeInodeInfo, writer: bool) -> None:
        self.pipe = pipe
        self.writer = writer

    def release(self, k: Machine, file: File) -> None:
        pipe = self.pipe
        if self.writer:
            pipe.writers -= 1
        else:
            pipe.readers -= 1
        wake_up(k, pipe.rd_wait)
        wake_up(k, pipe.wr_wait)
        if not pipe.readers and not pipe.writers:
            k.kmem_cache_free("pipe_inode_info")


class PipeOps(InodeOps):
    def read(self, k: Machine, current: Task, file: File, count: int) -> bytes:
        pipe = file.private.pipe
        if pipe.buffer:
            data = bytes(pipe.buffer[:count])
            del pipe.buffer[:count]
            wake_up(k, pipe.wr_wait)
            return data
        if not pipe.writers:
            return b""
        if file.f_flags & O_NONBLOCK:
            raise KernelError(E.EAGAIN, "pipe_read: the pipe is empty (O_NONBLOCK)")
        raise WouldBlock(pipe.rd_wait, lambda: self.read(k, current, file, count))

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        return self._write(k, current, file, data, 0)

    def _write(self, k: Machine, current: Task, file: File, data: bytes, done: int) -> int:
        pipe = file.private.pipe
        if not pipe.readers:
            send_sig(k, SIGPIPE, current)
            if done:
                return done
            raise KernelError(E.EPIPE, "pipe_write: no reader is left")
        room = PIPE_CAPACITY - len(pipe.buffer)
        # Writes of at most PIPE_BUF bytes are atomic: all or wait.
        if room and (len(data) > PIPE_BUF or room >= len(data)):
            chunk = data[:room]
            pipe.buffer += chunk
            done += len(chunk)
            data = data[len(chunk) :]
            wake_up(k, pipe.rd_wait)
        if not data:
            return done
        if file.f_flags & O_NONBLOCK:
            if done:
                return done
            raise KernelError(E.EAGAIN, "pipe_write: the pipe is full (O_NONBLOCK)")
        rest, written = data, done
        raise WouldBlock(pipe.wr_wait, lambda: self._write(k, current, file, rest, written))


PIPE_OPS = PipeOps()


def do_pipe2(k: Machine, current: Task, flags: int) -> tuple[int, int]:
    """Two fds on a new pipe: the read end first."""
    k.kmem_cache_alloc(current, "pipe_inode_info")
    pipe = PipeInodeInfo()
    inode = Inode("pipe:", S_IFIFO | 0o600, ops=PIPE_OPS, uid=current.cred.fsuid, gid=current.cred.fsgid)
    files: list[File] = []
    fds: list[int] = []
    try:
        for writer in (False, True):
            end = PipeEnd(pipe, writer)
            files.append(alloc_file(k, current, None, inode, (O_WRONLY if writer else O_RDONLY) | flags, end))
            if writer:
                pipe.writers += 1
            else:
                pipe.readers += 1
        for _ in files:
            fds.append(get_unused_fd_flags(k, current, flags))
    except KernelError:
        for fd in fds:
            put_unused_fd(current, fd)
        for file in files:
            fput(k, file)
        if not files:
            k.kmem_cache_free("pipe_inode_info")
        raise
    for fd, file in zip(fds, files, strict=True):
        fd_install(current, fd, file)
    assert files[0].f_mode & FMODE_READ and files[1].f_mode & FMODE_WRITE
    return fds[0], fds[1]
