"""kernel/futex: waking a user word's waiters, and the process-private futex hash.

Only what process creation and exit touch is modelled: CLONE_CHILD_CLEARTID's wake at exit,
and (6.16+) the private hash a process gets when its first threads are created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.sched.core import wake_up_process
from forklab.kernel.task import PF_KTHREAD
from forklab.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.mm.mm import MmStruct
    from forklab.kernel.task import Task


def futex_wake(k: Machine, mm: MmStruct, addr: int, nr: int) -> int:
    """Wake up to ``nr`` tasks waiting on the word at ``addr``; returns how many."""
    key = (id(mm), addr)
    queue = k.futexes.get(key)
    if queue is None:
        return 0
    woken = list(queue.waiters)[:nr]
    for task in woken:
        del queue.waiters[task]
        wake_up_process(k, task)
    if not queue.waiters:
        del k.futexes[key]
    return len(woken)


def futex_wait_queue(k: Machine, mm: MmStruct, addr: int) -> WaitQueue:
    key = (id(mm), addr)
    queue = k.futexes.get(key)
    if queue is None:
        queue = k.futexes[key] = WaitQueue(fifo=True)
    return queue


def futex_hash_allocate_default(k: Machine, current: Task) -> None:
    """Size the private hash at 4 buckets per thread (threads counted up to the CPUs), at least 16."""
    mm = current.mm
    if current.flags & PF_KTHREAD or mm is None:
        return
    threads = min(current.signal.nr_threads, k.nr_cpu_ids)
    buckets = max(16, 1 << (4 * threads - 1).bit_length())
    if mm.futex_buckets >= buckets:
        return
    k.kmem_cache_alloc(current, "futex_private_hash")
    if mm.futex_buckets:
        k.kmem_cache_free("futex_private_hash")
    mm.futex_buckets = buckets


def futex_hash_free(k: Machine, mm: MmStruct) -> None:
    if mm.futex_buckets:
        mm.futex_buckets = 0
        k.kmem_cache_free("futex_private_hash")
