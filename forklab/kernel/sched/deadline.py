"""kernel/sched/deadline.c: the parameter check of SCHED_DEADLINE.

Only the check is modelled. Admission control (sched_dl_overflow, the root domain's
bandwidth) is not: kernel/sched/syscalls.py refuses with NotModelled where it would run.
"""

from __future__ import annotations

from forklab.uapi.sched import SchedAttr

DL_SCALE = 10  # runtimes are kept in units of 2**DL_SCALE ns
NSEC_PER_USEC = 1000
SYSCTL_SCHED_DL_PERIOD_MAX_US = 1 << 22  # kernel.sched_deadline_period_max_us, about 4 s
SYSCTL_SCHED_DL_PERIOD_MIN_US = 100  # kernel.sched_deadline_period_min_us
SCHED_FLAG_SUGOV = 0x10000000  # kernel-only: schedutil's worker, which needs no parameters


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
