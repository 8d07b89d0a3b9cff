"""kernel/cgroup/pids.c: the pids controller, which makes fork fail with EAGAIN at pids.max."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.cgroup.cgroup import Cgroup

PIDS_MAX = (1 << 63) - 1  # "max"


def pids_try_charge(cgrp: Cgroup, num: int) -> None:
    """Charge ``num`` tasks at every level up to (not including) the root; any level over its max refuses."""
    charged: list[Cgroup] = []
    level: Cgroup | None = cgrp
    while level is not None and level.parent is not None:
        level.pids_counter += num
        charged.append(level)
        if level.pids_counter > level.pids_max:
            for done in charged:
                done.pids_counter -= num
            level.pids_events_max += 1
            raise KernelError(E.EAGAIN, f"pids_can_fork: pids.max={level.pids_max} reached in cgroup {level.path()!r}")
        level = level.parent


def pids_uncharge(cgrp: Cgroup, num: int) -> None:
    level: Cgroup | None = cgrp
    while level is not None and level.parent is not None:
        level.pids_counter -= num
        level = level.parent
