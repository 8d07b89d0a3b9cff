"""kernel/cgroup/pids.c: the pids controller, which makes fork fail with EAGAIN at pids.max.

A css_set points at one pids css: on the default hierarchy the css of the nearest cgroup at
or above the task's whose parent enabled pids (or the root's), on a machine that binds pids to
a v1 hierarchy one of that hierarchy. Charges climb every css below the root, whose own css
counts nothing.
"""

from __future__ import annotations

from forklab.kernel.errors import KernelError
from forklab.uapi import errno as E

PIDS_MAX = (1 << 63) - 1  # "max"


class PidsCss:
    """struct pids_cgroup."""

    __slots__ = ("counter", "events_forkfail", "events_local_max", "events_max", "limit", "name", "parent", "watermark")

    def __init__(self, parent: PidsCss | None, name: str = "/") -> None:
        self.parent = parent
        self.name = name  # the cgroup's path, for messages
        self.limit = PIDS_MAX
        self.counter = 0
        self.watermark = 0
        self.events_max = 0  # refusals at this level or below (pids.events)
        self.events_local_max = 0  # refusals at this level (pids.events.local)
        self.events_forkfail = 0  # forks refused in this css (pids_localevents)

    def __repr__(self) -> str:
        return f"<pids css {self.name} {self.counter}/{self.limit}>"

    def levels(self) -> list[PidsCss]:
        """This css and its ancestors, the root's excluded."""
        found = []
        css: PidsCss | None = self
        while css is not None and css.parent is not None:
            found.append(css)
            css = css.parent
        return found


def pids_charge(pids: PidsCss, num: int) -> None:
    """Charge without looking at the limits: a migration may leave pids.current above pids.max."""
    for css in pids.levels():
        css.counter += num
        css.watermark = max(css.watermark, css.counter)


def pids_uncharge(pids: PidsCss, num: int) -> None:
    for css in pids.levels():
        css.counter -= num


def pids_try_charge(pids: PidsCss, num: int) -> None:
    """Charge ``num`` tasks at every level; the lowest level that would pass its limit refuses."""
    for css in pids.levels():
        if css.counter + num > css.limit:
            pids_event(pids, css)
            raise KernelError(E.EAGAIN, f"pids_can_fork: pids.max={css.limit} reached in cgroup {css.name!r}")
        # The levels below a refusing one keep the peak they would have had, as the kernel's do.
        css.watermark = max(css.watermark, css.counter + num)
    for css in pids.levels():
        css.counter += num


def pids_event(forking: PidsCss, over_limit: PidsCss) -> None:
    """Count the refusal: where the fork was tried, at the refusing level, and above it."""
    forking.events_forkfail += 1
    over_limit.events_local_max += 1
    for css in over_limit.levels():
        css.events_max += 1


def pids_max_write(pids: PidsCss, text: str) -> None:
    """ "max", or a number (kstrtoll's syntax) from 0 up to, not including, PIDS_MAX."""
    from forklab.kernel.cgroup.cgroup import kstrtoll

    text = text.strip()
    if text == "max":
        pids.limit = PIDS_MAX
        return
    limit = kstrtoll(text)
    if limit < 0 or limit >= PIDS_MAX:
        raise KernelError(E.EINVAL, f"pids_max_write: {text!r} is not between 0 and PIDS_MAX")
    pids.limit = limit


def pids_max_show(pids: PidsCss) -> str:
    return "max\n" if pids.limit >= PIDS_MAX else f"{pids.limit}\n"


def pids_events_show(pids: PidsCss, local: bool, local_events: bool) -> str:
    """With the pids_localevents mount option both files count the forks refused in this css."""
    if local_events:
        return f"max {pids.events_forkfail}\n"
    return f"max {pids.events_local_max if local else pids.events_max}\n"
