"""Tracepoints of a sandbox's tasks, from private tracefs instances.

The machine's own trace buffer is never touched. A sandbox uses a pair of instances of its
process: ``forklab-<pid>-<n>`` follows tasks through ``set_event_pid`` with
``options/event-fork``, ``...-free`` records ``sched_process_free``, which fires from an
RCU callback in whatever task the CPU runs then (``<idle>-0``, ``ksoftirqd``, ...), so a
pid filter would drop it.

Why the pair follows the driver's own thread rather than the sandbox's pid 1: replacing or
extending a pid list, emptying a buffer and removing an instance each wait for RCU grace
periods (50-100 ms here), while a fresh pid list costs 1 ms. So a pair is made once, with
the thread that starts sandboxes in its list; event-fork adds the launcher and the
sandbox's pid 1 (even while recording is off, so the boot is not recorded), and every task
after them. Tracing is switched on once pid 1 is ready; the sandbox's records are those of
pid 1 and the tasks it and its descendants forked, found by walking sched_process_fork.
Reads consume ``trace_pipe``. Between sandboxes a pair sits idle (tracing off); it is
removed at exit (``remove_idle``, registered with atexit), and pairs left by a process that
died are removed the next time a process makes one.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from forklab.host.errors import HostUnavailable

TRACEFS = Path("/sys/kernel/tracing")
PREFIX = "forklab-"
FOLLOWED = (
    "task/task_newtask",
    "sched/sched_process_fork",
    "sched/sched_wakeup_new",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
    "sched/sched_process_wait",
)
FREED = "sched/sched_process_free"
PID_FIELDS = ("pid", "parent_pid", "child_pid", "old_pid")

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|$)")


@dataclass(frozen=True)
class TraceRecord:
    """One tracepoint line. ``pid`` and the pid-valued fields are sandbox pids; ``foreign``
    names those ("task" for the task column) that belong to no task of the sandbox and so
    were left as the host's numbers. ``raw`` is the line as tracefs wrote it."""

    event: str
    comm: str
    pid: int
    cpu: int
    timestamp: float
    fields: dict[str, str]
    raw: str
    foreign: frozenset[str] = frozenset()


def tracefs() -> Path:
    """The tracefs mount, mounting it at /sys/kernel/tracing if it is not there yet."""
    if not (TRACEFS / "instances").is_dir():
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, check=False)
        if done.returncode != 0 or not (TRACEFS / "instances").is_dir():
            raise HostUnavailable(f"tracefs is not available at {TRACEFS}: {done.stderr.decode().strip()}")
    return TRACEFS


class Tracer:
    """One pair of instances: made once, then prepared, started and stopped per sandbox."""

    def __init__(self, name: str) -> None:
        base = tracefs() / "instances"
        self.follow = base / name
        self.free = base / f"{name}-free"
        self._pipes: list[int] = []
        self._texts = ["", ""]
        self._threads: set[int] = set()  # driver threads in the pid list
        try:
            self.follow.mkdir()
            self.free.mkdir()
            for inst in (self.follow, self.free):
                (inst / "tracing_on").write_text("0")
            (self.follow / "options/event-fork").write_text("1")
            for event in FOLLOWED:
                (self.follow / "events" / event / "enable").write_text("1")
            (self.free / "events" / FREED / "enable").write_text("1")
            for inst in (self.follow, self.free):
                self._pipes.append(os.open(inst / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError as err:
            self.remove()
            raise HostUnavailable(f"cannot trace in {self.follow}: {err.strerror}") from None

    def prepare(self) -> None:
        """Before the launcher is spawned: this thread followed, leftovers dropped."""
        thread = threading.get_native_id()
        if thread not in self._threads:
            fd = os.open(self.follow / "set_event_pid", os.O_WRONLY | os.O_CLOEXEC)  # no O_TRUNC: adds
            try:
                os.write(fd, f"{thread}\n".encode())
            finally:
                os.close(fd)
            self._threads.add(thread)
        self.texts()
        self._texts = ["", ""]

    def start(self) -> None:
        for inst in (self.follow, self.free):
            (inst / "tracing_on").write_text("1")

    def texts(self) -> tuple[str, str]:
        """Everything read since ``prepare``."""
        for i, fd in enumerate(self._pipes):
            while chunk := _read_some(fd):
                self._texts[i] += chunk
        return self._texts[0], self._texts[1]

    def stop(self) -> tuple[str, str]:
        for inst in (self.follow, self.free):
            (inst / "tracing_on").write_text("0")
        return self.texts()

    def remove(self) -> None:
        """rmdir both instances side by side: each waits out RCU grace periods."""
        for fd in self._pipes:
            os.close(fd)
        self._pipes.clear()
        workers = [threading.Thread(target=_remove, args=(inst,)) for inst in (self.follow, self.free)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def _read_some(fd: int) -> str:
    try:
        return os.read(fd, 1 << 16).decode(errors="replace")
    except BlockingIOError:
        return ""


_idle: list[Tracer] = []
_serial = itertools.count()


def take_tracer() -> Tracer:
    """An idle pair of this process, or a new one, prepared for a sandbox about to start."""
    if not _idle:
        _remove_orphans()
        _idle.append(Tracer(f"{PREFIX}{os.getpid()}-{next(_serial)}"))
    tracer = _idle.pop()
    try:
        tracer.prepare()
    except BaseException:
        _idle.append(tracer)
        raise
    return tracer


def park(tracer: Tracer) -> None:
    """Back to the idle pairs, for the next sandbox of this process."""
    _idle.append(tracer)


@atexit.register
def remove_idle() -> None:
    """Remove this process's idle pairs (at exit, or earlier if asked)."""
    while _idle:
        _idle.pop().remove()


@functools.cache
def _remove_orphans() -> None:
    """Once per process: remove instances whose process is gone (killed before its atexit)."""
    for entry in (tracefs() / "instances").iterdir():
        owner = re.fullmatch(rf"{PREFIX}(\d+)-\d+(?:-free)?", entry.name)
        if owner and not Path(f"/proc/{owner[1]}").exists():
            _remove(entry)


def records(texts: tuple[str, str], root: int, pids: Mapping[int, int]) -> list[TraceRecord]:
    """The records of ``root`` (host pid of pid 1) and its descendants, in time order, pids
    translated through ``pids`` (host -> sandbox)."""
    follow, free = texts
    tree = {root}
    followed = []
    for m in _matches(follow):
        if int(m["pid"]) not in tree:
            continue  # the driver's own doings, or another sandbox's
        if m["event"] == "sched_process_fork":
            tree.add(_pid_field(m, "child_pid"))
        followed.append(_record(m, pids))
    return sorted(followed + _frees(free, tree, pids), key=lambda r: r.timestamp)


def _remove(inst: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        inst.rmdir()


def _matches(text: str) -> list[re.Match[str]]:
    return [m for line in text.splitlines() if not line.startswith("#") and (m := _LINE.match(line))]


def _pid_field(m: re.Match[str], key: str = "pid") -> int:
    """A pid-valued field of the record, as the host numbered it."""
    value = dict(_FIELD.findall(m["body"])).get(key, "")
    return int(value) if value.isdigit() else 0


def _frees(text: str, candidates: set[int], pids: Mapping[int, int]) -> list[TraceRecord]:
    """The first free of each candidate host pid (a host pid may be reused afterwards)."""
    kept: list[TraceRecord] = []
    for m in _matches(text):
        pid = _pid_field(m)
        if pid in candidates:
            candidates.discard(pid)
            kept.append(_record(m, pids))
    return kept


def _record(m: re.Match[str], pids: Mapping[int, int]) -> TraceRecord:
    fields = dict(_FIELD.findall(m["body"]))
    foreign = set()
    for key in PID_FIELDS:
        value = fields.get(key, "")
        if not value.isdigit() or value == "0":
            continue
        if int(value) in pids:
            fields[key] = str(pids[int(value)])
        else:
            foreign.add(key)
    task = int(m["pid"])
    if task in pids:
        task = pids[task]
    else:
        foreign.add("task")
    return TraceRecord(m["event"], m["comm"], task, int(m["cpu"]), float(m["ts"]), fields, m[0], frozenset(foreign))
