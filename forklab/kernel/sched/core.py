"""kernel/sched/core.c: runqueues, the fork hooks of the scheduler, wakeups.

The model does not time-slice: a task runs when a system call is made on its behalf. What it
keeps is what fork and wakeup decide: the new task's state (TASK_NEW, then TASK_RUNNING), its
priority and policy, the CPU chosen for it, and where the fair class places it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.kernel.sched.deadline import SchedDlEntity
from forklab.kernel.sched.fair import (
    SCHED_PRIO_TO_WEIGHT,
    account_dequeue,
    account_enqueue,
    place_entity,
    sched_base_slice,
    update_curr,
)
from forklab.kernel.task import TASK_INTERRUPTIBLE, TASK_NEW, TASK_RUNNING, TASK_UNINTERRUPTIBLE
from forklab.kernel.trace import trace_sched_wakeup_new
from forklab.uapi import errno as E
from forklab.uapi.sched import SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE, SCHED_NORMAL, SCHED_RR

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

MAX_RT_PRIO = 100
MAX_DL_PRIO = 0
DEFAULT_PRIO = 120
MIN_NICE = -20
MAX_NICE = 19
WEIGHT_IDLEPRIO = 3  # a SCHED_IDLE task weighs less than one at nice 19


def nice_to_prio(nice: int) -> int:
    return DEFAULT_PRIO + nice


def prio_to_nice(prio: int) -> int:
    return prio - DEFAULT_PRIO


def rt_prio(prio: int) -> bool:
    return prio < MAX_RT_PRIO


def dl_prio(prio: int) -> bool:
    return prio < MAX_DL_PRIO


def task_nice(p: Task) -> int:
    return prio_to_nice(p.static_prio)


# The policy classes of kernel/sched/sched.h. The model's kernel, like the host's, is built
# without CONFIG_SCHED_CLASS_EXT: SCHED_EXT is no valid policy.
def idle_policy(policy: int) -> bool:
    return policy == SCHED_IDLE


def fair_policy(policy: int) -> bool:
    """SCHED_NORMAL and SCHED_BATCH (not SCHED_IDLE: its nice value is kept apart)."""
    return policy in (SCHED_NORMAL, SCHED_BATCH)


def rt_policy(policy: int) -> bool:
    return policy in (SCHED_FIFO, SCHED_RR)


def dl_policy(policy: int) -> bool:
    return policy == SCHED_DEADLINE


def valid_policy(policy: int) -> bool:
    return idle_policy(policy) or fair_policy(policy) or rt_policy(policy) or dl_policy(policy)


class SchedEntity:
    """struct sched_entity: the fair class's view of a task."""

    __slots__ = ("deadline", "on_rq", "slice", "sum_exec_runtime", "vlag", "vruntime", "weight")

    def __init__(self, weight: int = 1024, slice_ns: int = 0) -> None:
        self.on_rq = 0
        self.vruntime = 0
        self.deadline = 0
        self.vlag = 0
        self.sum_exec_runtime = 0
        self.slice = slice_ns
        self.weight = weight


class CfsRq:
    """struct cfs_rq: enough to find the average vruntime in O(1)."""

    __slots__ = ("min_vruntime", "nr_queued", "sum_w_vruntime", "sum_weight")

    def __init__(self) -> None:
        self.nr_queued = 0
        self.sum_weight = 0
        self.sum_w_vruntime = 0
        self.min_vruntime = 0


class Rq:
    """struct rq: one CPU's runqueue."""

    __slots__ = ("cfs", "cpu", "idle", "nr_running")

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.nr_running = 0
        self.cfs = CfsRq()
        self.idle: Task | None = None


def __normal_prio(policy: int, rt_priority: int, nice: int) -> int:
    if dl_policy(policy):
        return MAX_DL_PRIO - 1
    if rt_policy(policy):
        return MAX_RT_PRIO - 1 - rt_priority
    return nice_to_prio(nice)


def normal_prio(p: Task) -> int:
    return __normal_prio(p.policy, p.rt_priority, task_nice(p))


def set_load_weight(p: Task) -> None:
    if idle_policy(p.policy):
        p.se.weight = WEIGHT_IDLEPRIO
        return
    p.se.weight = SCHED_PRIO_TO_WEIGHT[max(0, min(39, p.static_prio - 100))]


@contextmanager
def requeued(k: Machine, p: Task) -> Iterator[None]:
    """Around a change of a task's weight: a queued task leaves its runqueue's sums and comes
    back with the new weight, as the kernel's dequeue_task/enqueue_task pair around it."""
    queued = p.se.on_rq
    cfs = k.rq[p.cpu].cfs
    if queued:
        account_dequeue(cfs, p.se)
    yield
    if queued:
        account_enqueue(cfs, p.se)


@traced
def sched_fork(k: Machine, current: Task, clone_flags: int, p: Task) -> None:
    """The child starts TASK_NEW (no wakeup can queue it yet) with the parent's normal priority
    and slice; SCHED_RESET_ON_FORK gives it SCHED_NORMAL, no negative nice and the base slice."""
    p.se = SchedEntity(current.se.weight, current.se.slice)
    # The child holds no deadline bandwidth: it must ask for its own (or fail below).
    p.dl = SchedDlEntity()
    p.on_rq = 0
    p.state = TASK_NEW
    # Priority inheritance boosts are not inherited: take normal_prio, not prio.
    p.prio = current.normal_prio
    if p.sched_reset_on_fork:
        if p.policy in (SCHED_DEADLINE, SCHED_FIFO, SCHED_RR):
            p.policy = SCHED_NORMAL
            p.static_prio = nice_to_prio(0)
            p.rt_priority = 0
        elif prio_to_nice(p.static_prio) < 0:
            p.static_prio = nice_to_prio(0)
        p.prio = p.normal_prio = p.static_prio
        set_load_weight(p)
        p.se.slice = sched_base_slice(k)
        p.sched_reset_on_fork = False
    if dl_prio(p.prio):
        raise KernelError(E.EAGAIN, "sched_fork: a SCHED_DEADLINE task cannot fork without SCHED_RESET_ON_FORK")


@traced
def sched_cgroup_fork(k: Machine, current: Task, p: Task) -> None:
    """The child is set on the parent's CPU until wake_up_new_task balances it."""
    p.cpu = current.cpu


def select_task_rq_fork(k: Machine, p: Task) -> int:
    """Fork balancing: the CPU with the fewest runnable tasks; ties keep the parent's CPU."""
    best = p.cpu
    best_load = k.rq[best].nr_running
    for rq in k.rq:
        if rq.nr_running < best_load:
            best, best_load = rq.cpu, rq.nr_running
    return best


def activate_task(k: Machine, p: Task, initial: bool = False) -> None:
    rq = k.rq[p.cpu]
    if initial:
        place_entity(rq.cfs, p.se, initial=True)
    p.on_rq = 1
    p.se.on_rq = 1
    rq.nr_running += 1
    account_enqueue(rq.cfs, p.se)


def deactivate_task(k: Machine, p: Task) -> None:
    if not p.on_rq:
        return
    rq = k.rq[p.cpu]
    p.on_rq = 0
    p.se.on_rq = 0
    rq.nr_running -= 1
    account_dequeue(rq.cfs, p.se)


@traced
def wake_up_new_task(k: Machine, p: Task) -> None:
    """TASK_RUNNING, a CPU by fork balancing, enqueued with initial placement."""
    p.state = TASK_RUNNING
    p.cpu = select_task_rq_fork(k, p)
    activate_task(k, p, initial=True)
    trace_sched_wakeup_new(k, p)


def try_to_wake_up(k: Machine, p: Task, state_mask: int) -> bool:
    """Wake ``p`` if it sleeps in a state ``state_mask`` covers; it runs after the current call."""
    if not p.state & state_mask:
        return False
    p.state = TASK_RUNNING
    if not p.on_rq:
        activate_task(k, p)
    k.woken.append(p)
    return True


def wake_up_process(k: Machine, p: Task) -> bool:
    return try_to_wake_up(k, p, TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE)


def charge(k: Machine, p: Task, delta: int) -> None:
    """The task ran ``delta`` ns of virtual time."""
    update_curr(k.rq[p.cpu].cfs, p.se, delta)
