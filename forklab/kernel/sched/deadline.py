"""kernel/sched/deadline.c: the parameter check and the admission control of SCHED_DEADLINE.

The model has one root domain (every CPU online, each of full capacity, no cpusets and no
affinity masks), so its dl_bw is the machine's; from 6.12 each CPU's fair server holds part of
it.

A task leaving SCHED_DEADLINE (or dying) gives its bandwidth back at once. The kernel gives it
back at the task's 0-lag time (task_non_contending(), then inactive_task_timer()): at once if
that time has passed, as it has for a task that used little of its runtime in this period or
whose deadline is well before its period's end; otherwise up to a period later, and an
admission in between is refused (EBUSY). The model gives tasks no CPU time to use up, so it is
always in the first case. A sandbox cannot check either: its root has no CAP_SYS_NICE in the
initial user namespace, so every deadline request there is EPERM (scenario 24).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.version import Behaviour
from forklab.uapi.sched import SCHED_FLAG_DL_OVERRUN, SCHED_FLAG_RECLAIM, SchedAttr

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

DL_SCALE = 10  # runtimes are kept in units of 2**DL_SCALE ns
NSEC_PER_USEC = 1000
SYSCTL_SCHED_DL_PERIOD_MAX_US = 1 << 22  # kernel.sched_deadline_period_max_us, about 4 s
SYSCTL_SCHED_DL_PERIOD_MIN_US = 100  # kernel.sched_deadline_period_min_us
SCHED_FLAG_SUGOV = 0x10000000  # kernel-only: schedutil's worker, which needs no parameters
SCHED_DL_FLAGS = SCHED_FLAG_RECLAIM | SCHED_FLAG_DL_OVERRUN | SCHED_FLAG_SUGOV
BW_SHIFT = 20  # bandwidths are fractions of 2**BW_SHIFT
SCHED_CAPACITY_SHIFT = 10  # a CPU at full capacity counts 2**SCHED_CAPACITY_SHIFT
# kernel.sched_rt_period_us and kernel.sched_rt_runtime_us: deadline tasks may take 95 %.
SYSCTL_SCHED_RT_PERIOD_US = 1_000_000
SYSCTL_SCHED_RT_RUNTIME_US = 950_000
# Each CPU's fair server: 50 ms of every second for fair tasks starved by real-time ones.
NSEC_PER_SEC = 1_000_000_000
FAIR_SERVER_RUNTIME = 50_000_000


class SchedDlEntity:
    """struct sched_dl_entity: a deadline task's parameters (all 0 for any other task)."""

    __slots__ = ("dl_bw", "dl_deadline", "dl_period", "dl_runtime", "flags")

    def __init__(self) -> None:
        self.dl_runtime = 0
        self.dl_deadline = 0
        self.dl_period = 0
        self.dl_bw = 0
        self.flags = 0


class DlBw:
    """struct dl_bw of the root domain: the limit per CPU and what deadline tasks hold."""

    __slots__ = ("bw", "total_bw")

    def __init__(self) -> None:
        period = SYSCTL_SCHED_RT_PERIOD_US * NSEC_PER_USEC
        self.bw = to_ratio(period, SYSCTL_SCHED_RT_RUNTIME_US * NSEC_PER_USEC)
        self.total_bw = 0


def to_ratio(period: int, runtime: int) -> int:
    """runtime / period as a fraction of 2**BW_SHIFT, rounded down."""
    if period == 0:
        return 0
    return (runtime << BW_SHIFT) // period


def dl_server_total_bw(k: Machine) -> int:
    """The bandwidth the CPUs' fair servers hold in the root domain (0 before they existed)."""
    if not k.has(Behaviour.DL_SERVER):
        return 0
    return k.nr_cpu_ids * to_ratio(NSEC_PER_SEC, FAIR_SERVER_RUNTIME)


def fair_server_init(k: Machine) -> None:
    """Every CPU's fair server takes its bandwidth at boot, so deadline tasks have less."""
    k.dl_bw.total_bw += dl_server_total_bw(k)


def cap_scale(v: int, cap: int) -> int:
    return v * cap >> SCHED_CAPACITY_SHIFT


def dl_bw_capacity(k: Machine) -> int:
    return k.nr_cpu_ids << SCHED_CAPACITY_SHIFT


def __checkparam_dl(attr: SchedAttr) -> bool:
    """0 < runtime (at least 1024 ns) <= deadline <= period (the deadline when 0), the period
    within the sysctl bounds, no value with bit 63 set."""
    if attr.sched_flags & SCHED_FLAG_SUGOV:
        return True
    if attr.sched_deadline == 0 or attr.sched_runtime < 1 << DL_SCALE:
        return False
    if (attr.sched_deadline | attr.sched_period) & 1 << 63:
        return False
    period = attr.sched_period or attr.sched_deadline
    if period < attr.sched_deadline or attr.sched_deadline < attr.sched_runtime:
        return False
    low = SYSCTL_SCHED_DL_PERIOD_MIN_US * NSEC_PER_USEC
    high = SYSCTL_SCHED_DL_PERIOD_MAX_US * NSEC_PER_USEC
    return low <= period <= high


def dl_param_changed(p: Task, attr: SchedAttr) -> bool:
    dl_se = p.dl
    asked = (attr.sched_runtime, attr.sched_deadline, attr.sched_period, attr.sched_flags & SCHED_DL_FLAGS)
    return (dl_se.dl_runtime, dl_se.dl_deadline, dl_se.dl_period, dl_se.flags) != asked


def __setparam_dl(p: Task, attr: SchedAttr) -> None:
    dl_se = p.dl
    dl_se.dl_runtime = attr.sched_runtime
    dl_se.dl_deadline = attr.sched_deadline
    dl_se.dl_period = attr.sched_period or attr.sched_deadline
    dl_se.flags = attr.sched_flags & SCHED_DL_FLAGS
    dl_se.dl_bw = to_ratio(dl_se.dl_period, dl_se.dl_runtime)


def __getparam_dl(p: Task, attr: SchedAttr) -> SchedAttr:
    dl_se = p.dl
    return attr._replace(
        sched_priority=p.rt_priority,
        sched_runtime=dl_se.dl_runtime,
        sched_deadline=dl_se.dl_deadline,
        sched_period=dl_se.dl_period,
        sched_flags=attr.sched_flags & ~SCHED_DL_FLAGS | dl_se.flags,
    )


def __dl_overflow(dl_b: DlBw, cap: int, old_bw: int, new_bw: int) -> bool:
    return cap_scale(dl_b.bw, cap) < dl_b.total_bw - old_bw + new_bw


def sched_dl_overflow(k: Machine, p: Task, attr: SchedAttr) -> bool:
    """Whether making ``p`` a deadline task with ``attr``, or changing its parameters, would
    take more bandwidth than the root domain has; if not, the new bandwidth is accounted.
    (Leaving SCHED_DEADLINE always fits, so the caller does not ask.)"""
    new_bw = to_ratio(attr.sched_period or attr.sched_deadline, attr.sched_runtime)
    old_bw = p.dl.dl_bw  # 0 unless p is a deadline task already
    dl_b = k.dl_bw
    if __dl_overflow(dl_b, dl_bw_capacity(k), old_bw, new_bw):
        return True
    dl_b.total_bw += new_bw - old_bw
    return False


def switched_from_dl(k: Machine, p: Task) -> None:
    """The task left SCHED_DEADLINE: its bandwidth returns to the root domain and its
    parameters are cleared (__dl_clear_params), as the kernel does at the 0-lag time."""
    k.dl_bw.total_bw -= p.dl.dl_bw
    p.dl = SchedDlEntity()


def task_dead_dl(k: Machine, p: Task) -> None:
    """A deadline task's last schedule: its bandwidth returns to the root domain."""
    k.dl_bw.total_bw -= p.dl.dl_bw
