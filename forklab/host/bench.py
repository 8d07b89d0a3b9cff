"""The host's side of ``forklab bench``: bench.c's measurements, each run as pid 1 of fresh user,
pid and mount namespaces, in a pids cgroup of its own, killed at a time limit."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from forklab.host.build import bench_binary, host_available
from forklab.host.cgroup import PidsCgroup
from forklab.host.errors import HostError, HostUnavailable
from forklab.host.sandbox import id_base

# Tasks a measurement may have besides a bomb's children: pid 1 and the child of the moment.
MEASURE_TASKS = 8
# What Python's os.fork loop runs (argv: cycles); it prints the total ns.
PYTHON_FORK = """
import os, sys, time
n = int(sys.argv[1])
start = time.perf_counter_ns()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print(time.perf_counter_ns() - start)
"""


@dataclass(frozen=True)
class HostBomb:
    """A bomb on the host: children made before fork failed, its errno, and whether the pid
    namespace had a pid_max of its own (else the pids cgroup capped it)."""

    children: int
    errno: int
    per_namespace_pid_max: bool


def fenced(program: str, args: list[str], max_tasks: int = MEASURE_TASKS, seconds: int = 120) -> str:
    """Run ``program`` as pid 1 of a fresh sandbox and return what it printed."""
    available, why = host_available()
    if not available:
        raise HostUnavailable(why)
    binary = bench_binary()
    cgroup = PidsCgroup(max_tasks)
    try:
        command = [binary, "launch", cgroup.procs, str(id_base(os.getpid())), str(seconds), program, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 10, check=False)
        except subprocess.TimeoutExpired:
            raise HostError(f"bench {' '.join(args[:2])} outlived its {seconds} s limit") from None
        except OSError as err:
            raise HostUnavailable(f"cannot run {binary}: {err.strerror}") from None
    finally:
        cgroup.remove()
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise HostError(lines[-1] if lines else f"bench {' '.join(args[:2])} failed ({done.returncode})")
    return done.stdout


def measured(program: str, args: list[str], count: int, max_tasks: int = MEASURE_TASKS) -> list[int]:
    """The first ``count`` numbers that a measurement printed."""
    words = fenced(program, args, max_tasks).split()[:count]
    if len(words) < count or not all(word.isdigit() for word in words):
        raise HostError(f"bench {' '.join(args[:2])} printed no result")
    return [int(word) for word in words]


def cycle_ns(kind: str, n: int) -> float:
    """Nanoseconds per create+exit+wait (``fork``, ``vfork``) or create+join (``thread``)."""
    return measured(bench_binary(), [kind, str(n)], 1)[0] / n


def python_interpreter() -> str | None:
    """A Python that the sandbox's root (not the host's) can run: this one, else the system's."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        path = Path(candidate).resolve()
        parents = [p for p in path.parents if p != Path("/")]
        if path.exists() and all(os.stat(p).st_mode & 0o001 for p in parents):
            return str(path)
    return None


def python_fork_ns(n: int) -> float:
    """Nanoseconds per os.fork + os._exit + os.waitpid in CPython."""
    python = python_interpreter()
    if python is None:
        raise HostUnavailable("no Python interpreter that a sandbox's unprivileged root can read")
    return measured(python, ["-I", "-S", "-c", PYTHON_FORK, str(n)], 1)[0] / n


def fork_latency_ns(size: int, n: int) -> tuple[float, float]:
    """(median, fastest) ns of one fork() call with ``size`` bytes mapped and every page touched."""
    _, median, fastest = measured(bench_binary(), ["memfork", str(size), str(n)], 3)
    return median, fastest


def bomb_cgroup_max(pid_max: int) -> int:
    """The bomb's pids.max: above what pid_max allows, so that a namespace's own pid_max binds
    first; where the kernel has none, this cap ends the bomb."""
    return pid_max + MEASURE_TASKS


def host_bomb(pid_max: int) -> HostBomb:
    """Fork until fork fails as pid 1 of a fresh pid namespace, asking for ``pid_max`` there."""
    children, err, per_namespace = measured(bench_binary(), ["bomb", str(pid_max)], 3, bomb_cgroup_max(pid_max))
    return HostBomb(children, err, per_namespace == 1)
