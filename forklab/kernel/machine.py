"""The kernel's global state: one object per booted model.

The kernel keeps these as global variables (nr_threads, max_threads, total_forks,
init_task, init_pid_ns, ...); the model keeps them on a ``Machine`` so that several models
can live in one Python process. Model functions take it as their first argument, ``k``.

Two mechanisms of the model live here because every allocation site uses them:
- ``kmem_cache_alloc``/``kmem_cache_free`` count live objects per cache, like
  /proc/slabinfo; the invariant checker compares those counts with what it finds, so a
  leaked reference shows up as a count that does not come back;
- each allocation is a fault-injection point, like the kernel's failslab honouring
  /proc/thread-self/fail-nth.
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING

from forklab.kernel.fault import should_fail
from forklab.kernel.version import Behaviour, KernelVersion
from forklab.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from forklab.kernel.cgroup.cgroup import CgroupRoot
    from forklab.kernel.fs.vfs import Vfs
    from forklab.kernel.ftrace import FunctionTracer
    from forklab.kernel.main import KthreadCreateList
    from forklab.kernel.nsproxy import Nsproxy
    from forklab.kernel.pid_namespace import PidNamespace
    from forklab.kernel.sched.core import Rq
    from forklab.kernel.sched.deadline import DlBw
    from forklab.kernel.task import Task
    from forklab.kernel.trace import TraceBuffer
    from forklab.kernel.ucount import UcountsTable
    from forklab.kernel.user_namespace import UserNamespace

PAGE_SIZE = 4096
THREAD_SIZE = 16384  # x86-64 kernel stack
MIN_THREADS = 20
FUTEX_TID_MASK = 0x3FFFFFFF
MAX_THREADS = FUTEX_TID_MASK
PROC_DYNAMIC_FIRST = 0xF0000000


class Machine:
    """Everything the kernel keeps in global variables."""

    def __init__(self, version: KernelVersion, cpus: int, seed: int, memory: int) -> None:
        if not 1 <= cpus <= 64:
            raise ValueError(f"cpus must be between 1 and 64, not {cpus}")
        self.version = version
        self._behaviours = version.behaviours
        self.nr_cpu_ids = cpus
        self.totalram_pages = memory // PAGE_SIZE
        self.rng = random.Random(seed)
        self.seed = seed
        # Virtual time in nanoseconds since boot; advanced by system calls, never by the host.
        self.now = 0
        self.nr_threads = 0
        self.total_forks = 0
        self.max_threads = set_max_threads(self.totalram_pages)
        self.suid_dumpable = 0  # fs.suid_dumpable: what a task whose ids changed becomes
        self.process_counts = [0] * cpus
        # init_task.tasks: every thread-group leader, in creation order.
        self.tasks: dict[Task, None] = {}
        self.slab: dict[str, int] = {}
        # Tasks woken during a system call; they run when it returns (see syscall.py).
        self.woken: deque[Task] = deque()
        self.next_inum = PROC_DYNAMIC_FIRST
        self.current: Task | None = None
        # What tasks wrote to /dev/console.
        self.console = b""
        # Set when the model's kernel panicked (global init died); nothing runs after that.
        self.panicked: str | None = None
        # Private futex wait queues, keyed by (mm, address).
        self.futexes: dict[tuple[int, int], WaitQueue] = {}
        # bit_wait_table: tasks waiting for a bit of another task's to clear (JOBCTL_TRAPPING).
        self.bit_wait = WaitQueue()
        # Filled in by start_kernel() (main.py).
        self.init_task: Task
        self.idle_tasks: list[Task]
        self.rq: list[Rq]
        # def_root_domain.dl_bw: the deadline bandwidth of every CPU, the model having one root domain.
        self.dl_bw: DlBw
        self.init_user_ns: UserNamespace
        self.init_pid_ns: PidNamespace
        self.init_nsproxy: Nsproxy
        self.ucounts: UcountsTable
        self.vfs: Vfs
        self.cgroup_root: CgroupRoot
        self.trace: TraceBuffer
        # The function tracer, when one is enabled (ftrace.enable).
        self.ftrace: FunctionTracer | None = None
        self.kthread_create_list: KthreadCreateList

    def has(self, behaviour: Behaviour) -> bool:
        return behaviour in self._behaviours

    def kmem_cache_alloc(self, current: Task | None, cache: str) -> None:
        """Allocate one object from ``cache``: a fault-injection point, then counted."""
        if current is not None and current.fail_nth:
            should_fail(current, cache)
        slab = self.slab
        slab[cache] = slab.get(cache, 0) + 1

    def kmem_cache_free(self, cache: str) -> None:
        self.slab[cache] -= 1

    def kmem_cache_charge(self, cache: str, n: int) -> None:
        """Count ``n`` objects allocated (or, negative, freed) at once, where no failure can be
        injected: the same counts as one call per object, without the calls."""
        slab = self.slab
        slab[cache] = slab.get(cache, 0) + n

    def proc_alloc_inum(self) -> int:
        """A fresh inode number for a namespace, as /proc/<pid>/ns/* shows it."""
        inum = self.next_inum
        self.next_inum += 1
        return inum


def set_max_threads(totalram_pages: int) -> int:
    """kernel/fork.c set_max_threads(): thread structures may use at most 1/8 of RAM."""
    threads = totalram_pages * PAGE_SIZE // (THREAD_SIZE * 8)
    return max(MIN_THREADS, min(threads, MAX_THREADS))
