"""kernel/sched/fair.c: the fair class's bookkeeping at fork and enqueue (EEVDF, 6.6+).

Each runqueue keeps the load-weighted sum of its tasks' vruntimes, so the average vruntime
(where EEVDF places a new task with zero lag) costs nothing to read, however many tasks
are queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.version import Behaviour

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.sched.core import CfsRq, SchedEntity

NICE_0_LOAD = 1024
# normalized_sysctl_sched_base_slice, before and after BASE_SLICE_700US.
SCHED_BASE_SLICE_NS = 750_000
SCHED_BASE_SLICE_NS_700US = 700_000

# sched_prio_to_weight[]: nice -20 .. 19; each step is about 10% of CPU.
SCHED_PRIO_TO_WEIGHT = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip


def sched_base_slice(k: Machine) -> int:
    """sysctl_sched_base_slice scaled by 1 + log2(cpus), at most 8 cpus counted."""
    factor = 1 + (min(k.nr_cpu_ids, 8).bit_length() - 1)
    base = SCHED_BASE_SLICE_NS_700US if k.has(Behaviour.BASE_SLICE_700US) else SCHED_BASE_SLICE_NS
    return base * factor


def calc_delta_fair(delta: int, se: SchedEntity) -> int:
    """Virtual time for ``delta`` ns of real time at this entity's weight."""
    return delta * NICE_0_LOAD // se.weight


def avg_vruntime(cfs_rq: CfsRq) -> int:
    if cfs_rq.sum_weight == 0:
        return cfs_rq.min_vruntime
    return cfs_rq.sum_w_vruntime // cfs_rq.sum_weight


def place_entity(cfs_rq: CfsRq, se: SchedEntity, initial: bool) -> None:
    """A new task starts at the queue's average vruntime with no lag; its deadline half a slice on."""
    se.vruntime = avg_vruntime(cfs_rq) - se.vlag
    vslice = calc_delta_fair(se.slice, se)
    if initial:
        vslice //= 2
    se.deadline = se.vruntime + vslice


def account_enqueue(cfs_rq: CfsRq, se: SchedEntity) -> None:
    cfs_rq.sum_w_vruntime += se.weight * se.vruntime
    cfs_rq.sum_weight += se.weight
    cfs_rq.nr_queued += 1


def account_dequeue(cfs_rq: CfsRq, se: SchedEntity) -> None:
    cfs_rq.sum_w_vruntime -= se.weight * se.vruntime
    cfs_rq.sum_weight -= se.weight
    cfs_rq.nr_queued -= 1
    if cfs_rq.nr_queued == 0:
        cfs_rq.min_vruntime = max(cfs_rq.min_vruntime, se.vruntime)


def update_curr(cfs_rq: CfsRq | None, se: SchedEntity, delta: int) -> None:
    """Charge ``delta`` ns of run time: sum_exec_runtime and vruntime grow, the average follows."""
    se.sum_exec_runtime += delta
    dv = calc_delta_fair(delta, se)
    se.vruntime += dv
    se.deadline += dv
    if cfs_rq is not None and se.on_rq:
        cfs_rq.sum_w_vruntime += se.weight * dv
