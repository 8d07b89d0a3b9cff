"""The task cap: one pids cgroup per sandbox (v1 if the machine has it, else v2)."""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

from forklab.host.errors import HostError, HostUnavailable

_serial = itertools.count()


@functools.cache
def pids_hierarchy() -> Path | None:
    """The directory of this process's cgroup in a hierarchy with the pids controller."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    own = Path("/proc/self/cgroup").read_text().splitlines()
    for line in mounts:
        left, _, right = line.partition(" - ")
        fstype, _, options = right.split()[:3]
        point = left.split()[4]
        if fstype == "cgroup" and "pids" in options.split(","):
            return _own_dir(point, own, lambda ctl: "pids" in ctl.split(","))
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split()[0] == "cgroup2":
            here = _own_dir(left.split()[4], own, lambda ctl: ctl == "")
            if here is not None and "pids" in (here / "cgroup.subtree_control").read_text().split():
                return here
    return None


def _own_dir(mount: str, own: list[str], wanted: Callable[[str], bool]) -> Path | None:
    for entry in own:
        _, controllers, path = entry.split(":", 2)
        if wanted(controllers):
            return Path(mount) / path.lstrip("/")
    return None


class PidsCgroup:
    """A fresh cgroup with ``pids.max``; removed (empty, after its tasks died) by ``remove``."""

    def __init__(self, max_tasks: int) -> None:
        parent = pids_hierarchy()
        if parent is None:
            raise HostUnavailable("no pids cgroup controller")
        self.path = parent / f"forklab-{os.getpid()}-{next(_serial)}-{os.urandom(3).hex()}"
        try:
            self.path.mkdir()
            (self.path / "pids.max").write_text(f"{max_tasks}\n")
        except OSError as err:
            self.remove()
            raise HostUnavailable(f"cannot make a pids cgroup at {self.path}: {err.strerror}") from None
        self.procs = str(self.path / "cgroup.procs")

    def current(self) -> int:
        return int((self.path / "pids.current").read_text())

    def threads(self) -> list[int]:
        """Host tids of the tasks in this cgroup and in any below it (v1 "tasks", v2 "cgroup.threads")."""
        tids: list[int] = []
        for where, _, files in os.walk(self.path):
            name = "tasks" if "tasks" in files else "cgroup.threads"
            with contextlib.suppress(FileNotFoundError):
                tids.extend(int(line) for line in Path(where, name).read_text().split())
        return tids

    def remove(self) -> None:
        """rmdir, retrying briefly: the last tasks leave the cgroup a moment after they are reaped."""
        for delay in (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
            time.sleep(delay)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise HostError(f"cannot remove cgroup {self.path}: {err.strerror}") from None
        raise HostError(f"cgroup {self.path} still busy after its sandbox was killed")
