"""The model's side of ``forklab bench``: the same work as the host's, through the public API.

Each workload runs in a freshly booted model with tracing off, as the host runs without
tracefs; the caller times rounds of it (the best round counts: a loaded machine only ever makes
a round slower).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import forklab
from forklab import PROT_READ, PROT_WRITE, PTHREAD_FLAGS

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
STACK = 1 << 16
# Pages written in each mapping before the fork-cost runs: the model keeps written pages one
# by one, so a terabyte cannot all be written; a fork costs the same whatever was written.
TOUCHED = 64 * MiB


def per_op_ns(work: Callable[[int], None], n: int) -> float:
    """Nanoseconds per operation of one round of ``n``."""
    began = time.perf_counter_ns()
    work(n)
    return (time.perf_counter_ns() - began) / n


def booted() -> tuple[forklab.Kernel, forklab.TaskHandle]:
    """A model and a process of its own (a child of init) to do the work."""
    k = forklab.boot(trace=False)
    init = k.task(1)
    return k, k.task(init.fork())


def fork_exit_wait() -> Callable[[int], None]:
    """A freshly booted model's fork + exit + wait4 cycles."""
    k, parent = booted()
    task, fork, wait4 = k.task, parent.fork, parent.wait4

    def cycles(count: int) -> None:
        for _ in range(count):
            task(fork()).exit(0)
            wait4(-1, 0)

    return cycles


def vfork_exit_wait() -> Callable[[int], None]:
    k, parent = booted()
    task, vfork, wait4 = k.task, parent.vfork, parent.wait4

    def cycles(count: int) -> None:
        for _ in range(count):
            task(vfork()).exit(0)  # the parent sleeps in vfork until this
            wait4(-1, 0)

    return cycles


def thread_create_join() -> Callable[[int], None]:
    """pthread_create's clone, the thread's exit, and the join: the exit clears the tid word
    (CLONE_CHILD_CLEARTID) and pthread_join finds it zero."""
    k, leader = booted()
    stack = leader.mmap(STACK)
    task, clone, read_u32 = k.task, leader.clone, leader.read_u32

    def cycles(count: int) -> None:
        for _ in range(count):
            task(clone(PTHREAD_FLAGS, stack=stack + STACK, parent_tid=stack, tls=stack, child_tid=stack)).exit(0)
            if read_u32(stack):
                raise RuntimeError("the thread's exit did not clear its tid word")

    return cycles


def mapped_process(size: int, vmas: int) -> tuple[forklab.Kernel, forklab.TaskHandle]:
    """A process with ``size`` bytes mapped in ``vmas`` mappings (alternately writable and
    read-only, so that none merge), the first TOUCHED bytes of the writable ones written."""
    k, p = booted()
    each = size // vmas
    left = TOUCHED
    for index in range(vmas):
        writable = index % 2 == 0
        addr = p.mmap(each, PROT_READ | PROT_WRITE if writable else PROT_READ)
        if writable and left > 0:
            written = min(each, left)
            p.poke(addr, b"\1" * written)
            left -= written
    return k, p


def fork_cost_ns(size: int, vmas: int, n: int) -> float:
    """Median ns of one fork() by a process with ``size`` mapped (the child exits and is reaped
    between forks, untimed)."""
    k, p = mapped_process(size, vmas)
    times = []
    for _ in range(n):
        began = time.perf_counter_ns()
        pid = p.fork()
        times.append(time.perf_counter_ns() - began)
        k.task(pid).exit(0)
        p.wait4(pid, 0)
    return statistics.median(times)


def bytes_per_task(n: int) -> tuple[float, float]:
    """Python heap bytes per live forked process and per live thread (each a pthread_create
    clone sharing one stack: the thread's own stack mapping is not counted)."""
    _, p = booted()
    stack = p.mmap(STACK)

    def fork() -> None:
        p.fork()

    def thread() -> None:
        p.clone(PTHREAD_FLAGS, stack=stack + STACK, parent_tid=stack, tls=stack, child_tid=stack)

    return heap_growth(fork, n), heap_growth(thread, n)


def heap_growth(make: Callable[[], None], n: int) -> float:
    """Bytes the Python heap grows by per call of ``make``, everything made staying alive."""
    make()  # first-time growth (dict resizes, caches) is not per task
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            make()
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
