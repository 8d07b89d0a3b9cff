"""Where a fork bomb must stop: the count of forks that succeed before one fails with EAGAIN,
and which check of copy_process refuses it, worked out from the kernel's rules alone.

Every fork of the bomb makes one single-threaded process: one more task for threads-max, one
more process for its user's RLIMIT_NPROC, one more pid, one more task in its pids cgroup.
copy_process checks them in this order (the first limit reached is the one that refuses):

1. RLIMIT_NPROC (copy_creds has counted the new process; more than the limit refuses),
   unless the user is root of the initial namespace or holds CAP_SYS_RESOURCE or CAP_SYS_ADMIN;
2. threads-max (nr_threads at the limit refuses);
3. alloc_pid: the cyclic allocator hands out the lowest free number at or above its cursor,
   below pid_max; once the cursor has passed RESERVED_PIDS it wraps to 300, never lower;
4. the pids cgroup (one more task than pids.max refuses), after alloc_pid.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

RESERVED_PIDS = 300

# The checks, in copy_process's order, and the words of the model's refusal that name each.
CHECKS = ("RLIMIT_NPROC", "threads-max", "pid_max", "pids.max")
REFUSAL = {"RLIMIT_NPROC": "RLIMIT_NPROC", "threads-max": "threads-max", "pid_max": "alloc_pid",
           "pids.max": "pids_can_fork"}  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """What the kernel holds when the bomb starts.

    ``used`` are the pid numbers taken in the bomb's pid namespace and ``cursor`` is where the
    allocator looks next (one past the last pid handed out). ``nproc_limit`` is None when
    RLIMIT_NPROC does not apply; ``pids_max`` is None without a pids cgroup limit.
    """

    pid_max: int
    used: Sequence[int]
    cursor: int
    threads_max: int
    nr_threads: int
    nproc_limit: int | None = None
    nproc: int = 0
    pids_max: int | None = None
    pids_current: int = 0


@dataclass(frozen=True)
class Prediction:
    forks: int  # forks that succeed
    check: str  # the check that refuses the next one (one of CHECKS)

    @property
    def refusal(self) -> str:
        """The words that the model's EAGAIN message carries for this check."""
        return REFUSAL[self.check]


def free_pids(used: Sequence[int], low: int, high: int) -> int:
    """Numbers in [low, high) that ``used`` (sorted) does not hold."""
    if high <= low:
        return 0
    taken = bisect.bisect_left(used, high) - bisect.bisect_left(used, low)
    return high - low - taken


def pids_left(pid_max: int, cursor: int, used: Sequence[int]) -> int:
    """How many pids alloc_pid still hands out in this namespace.

    First every free number from the cursor up to pid_max. Then the cursor is past
    RESERVED_PIDS (it is at pid_max, or was already), so the search wraps to 300 and finds the
    free numbers below where it started. Only when nothing was free above a cursor still at
    or below 300 does the wrap go down to 1.
    """
    ordered = sorted(used)
    first = max(cursor, 1)
    ahead = free_pids(ordered, first, pid_max)
    floor = RESERVED_PIDS if ahead or cursor > RESERVED_PIDS else 1
    return ahead + free_pids(ordered, floor, first)


def predict(limits: Limits) -> Prediction:
    room = {
        "RLIMIT_NPROC": None if limits.nproc_limit is None else limits.nproc_limit - limits.nproc,
        "threads-max": limits.threads_max - limits.nr_threads,
        "pid_max": pids_left(limits.pid_max, limits.cursor, limits.used),
        "pids.max": None if limits.pids_max is None else limits.pids_max - limits.pids_current,
    }
    applying = [(name, max(0, n)) for name, n in room.items() if n is not None]
    bound = min(n for _, n in applying)
    return Prediction(bound, next(name for name, n in applying if n == bound))
