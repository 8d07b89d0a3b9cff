"""The sandbox's cgroups: its task cap, one pids cgroup (v1 if the machine has it, else v2), and
its own cgroup v2 directory delegated to the sandbox's root (on a pure v2 machine, the same one).

What a sandbox finds on v2 differs between machines (pids bound to v1 or not, a writable v2
hierarchy or not, its mount options); ``v2_setup`` says what, so the model can be set up alike.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class V2Setup:
    """What a sandbox's tasks find on cgroup v2 (the model's ModelSide is set up alike)."""

    delegated: bool = True  # a v2 cgroup of its own, whose directory, cgroup.procs,
    # cgroup.threads and cgroup.subtree_control its root owns
    pids: bool = True  # ... in which the pids controller is available
    nsdelegate: bool = False  # the hierarchy's mount options
    pids_localevents: bool = False


DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


def _v2_mount() -> tuple[Path, str] | None:
    """This process's v2 cgroup directory and the hierarchy's super options."""
    own = Path("/proc/self/cgroup").read_text().splitlines()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        if fields[0] == "cgroup2":
            here = _own_dir(left.split()[4], own, lambda ctl: ctl == "")
            if here is not None:
                return here, fields[2] if len(fields) > 2 else ""
    return None


def _is_v2(path: Path) -> bool:
    found = _v2_mount()
    return found is not None and path.parent == found[0]


@functools.cache
def v2_setup() -> V2Setup:
    """Probed once: a pure v2 machine delegates the pids cgroup itself; a hybrid one a new v2
    directory beside it, if v2 is writable here."""
    found = _v2_mount()
    if found is None:
        return V2Setup(delegated=False, pids=False)
    own, options = found
    flags = options.split(",")
    delegated = os.access(own, os.W_OK)
    controllers = own / ("cgroup.subtree_control" if delegated else "cgroup.controllers")
    try:
        pids = "pids" in controllers.read_text().split()
    except OSError:
        pids = False
    return V2Setup(delegated, pids, "nsdelegate" in flags, "pids_localevents" in flags)


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
        _rmdir(self.path)


def _rmdir(path: Path) -> None:
    """rmdir, retrying briefly: the last tasks leave the cgroup a moment after they are reaped."""
    for delay in (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
        time.sleep(delay)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise HostError(f"cannot remove cgroup {path}: {err.strerror}") from None
    raise HostError(f"cgroup {path} still busy after its sandbox was killed")


class V2Cgroup:
    """The sandbox's v2 cgroup: the pids cgroup on a pure v2 machine, else a directory of its own.

    ``delegate`` hands it to the sandbox's root; ``remove`` takes away whatever the sandbox made
    inside it (children first), then the directory if it is its own.
    """

    def __init__(self, pids: PidsCgroup) -> None:
        found = _v2_mount()
        self.own = not _is_v2(pids.path) and v2_setup().delegated and found is not None
        self.path = pids.path
        if self.own:
            assert found is not None
            self.path = found[0] / pids.path.name
            try:
                self.path.mkdir()
            except OSError as err:
                raise HostUnavailable(f"cannot make a v2 cgroup at {self.path}: {err.strerror}") from None

    def delegate(self, host_pid: int, host_id: int) -> None:
        """Move the task there (if the pids cgroup is elsewhere), then give the cgroup to ``host_id``."""
        if not v2_setup().delegated:
            return
        if self.own:
            (self.path / "cgroup.procs").write_text(f"{host_pid}\n")
        for path in (self.path, *(self.path / name for name in DELEGATED_FILES)):
            os.chown(path, host_id, host_id)

    def remove(self) -> None:
        """Every cgroup the sandbox made (deepest first), then its own directory."""
        if not self.path.exists():
            return
        inner = sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for path in inner:
            _rmdir(path)
        if self.own:
            _rmdir(self.path)
