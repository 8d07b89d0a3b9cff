"""kernel/sched/wait.c: wait queues, and how a system call sleeps in the model.

The model runs one system call at a time, so a call that must sleep cannot wait in place.
It raises ``WouldBlock`` naming the wait queue and a ``retry`` callable; the system-call
layer parks the task there (state S or D) and, once the task is woken, calls ``retry`` as the
kernel's wait loop would re-test its condition. ``retry`` returns the result, or raises
``WouldBlock`` again to go back to sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forklab.kernel.sched.core import try_to_wake_up
from forklab.kernel.task import TASK_INTERRUPTIBLE

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task


WakeTest = Callable[[Any], bool]


class WaitQueue:
    """wait_queue_head_t: the tasks sleeping on one event, woken from the head.

    add_wait_queue() puts a sleeper at the head, so the latest is woken first (two threads
    waiting for the same child: the one that waited last reaps it, as the host shows). A
    ``fifo`` queue (a futex's hash bucket) wakes the earliest first.
    """

    __slots__ = ("fifo", "waiters")

    def __init__(self, fifo: bool = False) -> None:
        self.fifo = fifo
        # Each sleeper with its wake function's test of the waker's key (None: any wake-up wakes it).
        self.waiters: dict[Task, WakeTest | None] = {}

    def add(self, task: Task, wake_if: WakeTest | None = None) -> None:
        if self.fifo:
            self.waiters[task] = wake_if
        else:
            self.waiters = {task: wake_if, **self.waiters}

    def __len__(self) -> int:
        return len(self.waiters)


def wake_up(k: Machine, wq: WaitQueue, mask: int = TASK_INTERRUPTIBLE | 0x2, key: Any = None) -> None:
    """Wake every task sleeping on ``wq`` in a state that ``mask`` covers (TASK_NORMAL by default)
    and whose wake function accepts ``key``."""
    if not wq.waiters:
        return
    for task, wake_if in list(wq.waiters.items()):
        if key is None or wake_if is None or wake_if(key):
            try_to_wake_up(k, task, mask)


class Completion:
    """struct completion (kernel/sched/completion.c): the vfork parent's wait for its child to
    release the mm."""

    __slots__ = ("done", "wait")

    def __init__(self) -> None:
        self.done = False
        self.wait = WaitQueue()
