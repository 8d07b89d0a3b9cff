"""The model's fork bomb: one process forks until fork fails, in a model whose pid_max is set to
the size asked for (threads-max raised out of the way, so that pid_max binds).

It runs in a process of its own (``python -m forklab.bench.bomb PID_MAX``) so that its peak
memory is its own: progress lines (``forks N``) and then one JSON line on standard output.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import forklab
from forklab.bench.predict import Limits, Prediction, predict

PROGRESS_EVERY = 1 << 14


@dataclass(frozen=True)
class BombResult:
    pid_max: int
    predicted: int
    predicted_check: str
    forks: int
    errno: int
    refusal: str  # the model's message for the fork that failed
    seconds: float
    cpu_seconds: float  # this process's CPU time in the bomb: what a loaded machine does not stretch
    peak_rss: int  # bytes, the whole process at its largest
    booted_rss: int  # bytes, before the first fork

    @property
    def exact(self) -> bool:
        """EAGAIN after exactly the predicted count, from the predicted check."""
        prediction = Prediction(self.predicted, self.predicted_check)
        return self.forks == self.predicted and self.errno == errno.EAGAIN and prediction.refusal in self.refusal

    @property
    def bytes_per_process(self) -> float:
        return (self.peak_rss - self.booted_rss) / max(1, self.forks)


def rss_now() -> int:
    """This process's resident memory, in bytes."""
    return status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """The most this process has had resident, in bytes: VmHWM, which (unlike ru_maxrss) does
    not count the memory of the process that it was forked from before its exec."""
    return status_kib("VmHWM") * 1024


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def limits_of(k: forklab.Kernel) -> Limits:
    """What a bomb by root in the initial pid namespace meets: pids, the cursor, threads-max
    (root is exempt from RLIMIT_NPROC; the root cgroup has no pids.max)."""
    machine = k.machine
    ns = machine.init_pid_ns
    return Limits(ns.pid_max, list(ns.idr), ns.idr_next, machine.max_threads, machine.nr_threads)


def run_bomb(pid_max: int, progress: Callable[[int], None] = lambda forks: None) -> BombResult:
    k = forklab.boot(trace=False)
    init = k.task(1)
    init.write_file("/proc/sys/kernel/pid_max", f"{pid_max}\n")
    init.write_file("/proc/sys/kernel/threads-max", f"{2 * pid_max}\n")
    bomber = k.task(init.fork())
    prediction = predict(limits_of(k))
    booted = rss_now()
    fork = bomber.fork
    forks = 0
    # Nothing dies in a bomb, so Python's cyclic collector would only walk millions of live
    # objects again and again: it rests until the bomb is over.
    gc.disable()
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        while True:
            fork()
            forks += 1
            if not forks % PROGRESS_EVERY:
                progress(forks)
    except OSError as err:
        failure = err
    finally:
        gc.enable()
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    return BombResult(pid_max, prediction.forks, prediction.check, forks, failure.errno or 0, str(failure), seconds,
                      cpu_seconds, peak_rss(), booted)  # fmt: skip


def main() -> None:
    def report(forks: int) -> None:
        print(f"forks {forks}", flush=True)

    result = run_bomb(int(sys.argv[1]), report)
    print(json.dumps(asdict(result)), flush=True)
    # Tearing down millions of tasks object by object would only keep the caller waiting.
    os._exit(0)


if __name__ == "__main__":
    main()
