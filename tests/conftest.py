"""Shared fixtures: a freshly booted model and its init task."""

from __future__ import annotations

import struct

import pytest

import forklab
from forklab import (
    PTHREAD_FLAGS,
)


@pytest.fixture
def k() -> forklab.Kernel:
    return forklab.boot()


@pytest.fixture
def init(k: forklab.Kernel) -> forklab.TaskHandle:
    return k.task(1)


def threaded_child(init: forklab.TaskHandle, threads: int) -> tuple[forklab.TaskHandle, list[forklab.TaskHandle]]:
    """A child process of ``init`` with ``threads`` more threads made as pthread_create makes
    them, all idle between calls."""
    leader = init.task(init.fork())
    made = []
    for _ in range(threads):
        stack = leader.mmap(65536)
        made.append(leader.task(leader.clone(PTHREAD_FLAGS, stack=stack + 65536, parent_tid=stack, tls=stack)))
    return leader, made


def clone_args(flags: int, cgroup: int = 0, exit_signal: int = forklab.SIGCHLD) -> bytes:
    """struct clone_args as clone3 reads it (88 bytes): flags, pidfd, child_tid, parent_tid,
    exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup."""
    return struct.pack("<11Q", flags, 0, 0, 0, exit_signal, 0, 0, 0, 0, 0, cgroup)
