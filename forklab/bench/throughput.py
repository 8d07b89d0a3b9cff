"""``forklab diff`` throughput: random sequences run on both sides, each side's time kept apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from forklab.diff.compare import run
from forklab.diff.generate import random_scenario
from forklab.diff.sides import HostSide, ModelSide
from forklab.kernel.version import DEFAULT_VERSION


class Timed:
    """A diff side whose calls from the comparison are timed (its calls to itself are not
    counted twice)."""

    def __init__(self, driver: ModelSide | HostSide) -> None:
        self._driver = driver
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._driver, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        return timed


@dataclass(frozen=True)
class Throughput:
    sequences: int
    model_seconds: float
    host_seconds: float
    wall_seconds: float

    @staticmethod
    def per_minute(count: int, seconds: float) -> float:
        return 60 * count / seconds if seconds > 0 else float("inf")

    @property
    def model_per_minute(self) -> float:
        return self.per_minute(self.sequences, self.model_seconds)

    @property
    def host_per_minute(self) -> float:
        return self.per_minute(self.sequences, self.host_seconds)

    @property
    def diff_per_minute(self) -> float:
        return self.per_minute(self.sequences, self.wall_seconds)


def diff_throughput(count: int, steps: int, done: Callable[[], None] = lambda: None) -> Throughput:
    """Random sequences (seeds 0, 1, ...) of ``steps`` calls through ``forklab diff``'s
    comparison, tracepoints included, one at a time."""
    model_seconds = host_seconds = 0.0
    began = time.perf_counter()
    for seed in range(count):
        model, host = Timed(ModelSide(DEFAULT_VERSION)), Timed(HostSide(trace=True))
        run(random_scenario(seed, steps, DEFAULT_VERSION), cast(ModelSide, model), cast(HostSide, host), trace=True)
        model_seconds += model.seconds
        host_seconds += host.seconds
        done()
    return Throughput(count, model_seconds, host_seconds, time.perf_counter() - began)
