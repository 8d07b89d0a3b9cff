"""Many sequences on both sides: scenario files and random ones, their tally, and shrinking.

Each sequence gives a ``Result`` made only of plain data (it crosses process boundaries when
a campaign runs in several worker processes). A sequence agrees when no step, status, task
list or trace line differs; it agrees through explained differences when every difference it
shows is a known one (``known.py``); otherwise it disagrees and is shrunk.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from forklab.diff.compare import run
from forklab.diff.generate import random_scenario, shrink
from forklab.diff.known import HOST_TIMING, Difference, reason
from forklab.diff.script import Scenario, ScenarioError, load, parse
from forklab.diff.sides import HostSide, ModelSide
from forklab.diff.snippet import render_python
from forklab.kernel.version import DEFAULT_VERSION

SCENARIO_SUFFIX = ".forklab"
BUILTIN = Path(__file__).with_name("scenarios")
DEFAULT_STEPS = 20
RERUNS = 2  # a disagreeing sequence is run again this often before it counts


@dataclass(frozen=True)
class Job:
    """One sequence to run: a scenario's text, or a seed for a random one."""

    name: str
    text: str = ""
    seed: int | None = None
    steps: int = DEFAULT_STEPS
    version: str = DEFAULT_VERSION
    trace: bool = True

    def scenario(self) -> Scenario:
        if self.seed is not None:
            return random_scenario(self.seed, self.steps, self.version)
        return parse(self.text, self.name)


@dataclass
class Result:
    name: str
    text: str  # the sequence, one call a line
    steps: int = 0
    differences: list[Difference] = field(default_factory=list)
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (step, model, host)
    python: str = ""  # for a disagreeing sequence: the same calls on the model, as Python
    error: str = ""  # the run could not finish (the host refused it, or the scenario is wrong)
    seconds: float = 0.0

    @property
    def disagreements(self) -> list[Difference]:
        return [d for d in self.differences if not d.explained_by]

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        if self.disagreements:
            return "disagrees"
        return "explained" if self.differences else "agrees"

    @property
    def steps_disagreeing(self) -> int:
        return len({d.step for d in self.disagreements if d.kind in ("result", "pending")})


def run_scenario(scenario: Scenario, version: str = DEFAULT_VERSION, trace: bool = True) -> Result:
    """One sequence on the model and on the host; a host failure becomes the result's error."""
    from forklab.host import HostError
    from forklab.host.cgroup import v2_setup

    text = scenario_text(scenario)
    began = time.monotonic()
    try:
        v2 = v2_setup()
        report = run(scenario, ModelSide(version, v2=v2), HostSide(trace=trace), trace=trace)
    except (HostError, ScenarioError) as err:
        return Result(scenario.name, text, len(scenario.steps), error=str(err), seconds=time.monotonic() - began)
    outcomes = [(str(step), str(model), str(host)) for step, model, host in report.outcomes]
    python = render_python(report, report.model_names, v2) if report.disagreements else ""
    return Result(scenario.name, text, len(scenario.steps), report.differences, outcomes, python,
                  seconds=time.monotonic() - began)  # fmt: skip


def run_job(job: Job) -> Result:
    """The job's sequence on both sides. A disagreement is run again (at most ``RERUNS``
    times): if a rerun agrees, the host's outcome hung on timing, and the differences are
    kept, explained as such."""
    try:
        scenario = job.scenario()
    except ScenarioError as err:
        return Result(job.name, job.text, error=str(err))
    result = run_scenario(scenario, job.version, job.trace)
    result.name = job.name
    for _ in range(RERUNS if result.disagreements else 0):
        if not run_scenario(scenario, job.version, job.trace).disagreements:
            result.differences = [
                d if d.explained_by else replace(d, explained_by=HOST_TIMING) for d in result.differences
            ]
            break
    return result


def scenario_text(scenario: Scenario) -> str:
    return "".join(f"{step}\n" for step in scenario.steps)


# ---- what to run -------------------------------------------------------------------------------


def scenario_jobs(paths: Iterable[str | Path], version: str = DEFAULT_VERSION, trace: bool = True) -> list[Job]:
    """A job per scenario file; a directory gives its *.forklab files, in name order."""
    jobs = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(path.rglob(f"*{SCENARIO_SUFFIX}"))
            if not files:
                raise ScenarioError(f"{path}: no {SCENARIO_SUFFIX} files in it")
        elif path.exists():
            files = [path]
        else:
            raise ScenarioError(f"{path}: no such file or directory")
        for file in files:
            scenario = load(file)  # parsed now, so a broken file is reported before anything runs
            jobs.append(Job(str(file), scenario_text(scenario), version=version, trace=trace))
    return jobs


def random_jobs(count: int, seed: int, steps: int = DEFAULT_STEPS, version: str = DEFAULT_VERSION,
                trace: bool = True) -> list[Job]:  # fmt: skip
    """``count`` random sequences from seeds ``seed``, ``seed + 1``, ...: each can be run alone again."""
    return [
        Job(f"random seed {n}", seed=n, steps=steps, version=version, trace=trace) for n in range(seed, seed + count)
    ]


def builtin_scenarios() -> list[Path]:
    return sorted(BUILTIN.glob(f"*{SCENARIO_SUFFIX}"))


# ---- a campaign ----------------------------------------------------------------------------------


@dataclass
class Campaign:
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, verdict: str) -> int:
        return sum(result.verdict == verdict for result in self.results)

    @property
    def steps(self) -> int:
        return sum(result.steps for result in self.results)

    @property
    def steps_agreeing(self) -> int:
        return sum(result.steps - result.steps_disagreeing for result in self.results if not result.error)

    @property
    def passed(self) -> bool:
        return all(result.verdict in ("agrees", "explained") for result in self.results)

    def disagreements_by_kind(self) -> Counter[str]:
        return Counter(d.kind for result in self.results for d in result.disagreements)

    def explained(self) -> dict[str, tuple[int, str]]:
        """Each known difference seen: how many times, and why it is not a disagreement."""
        counts = Counter(d.explained_by for result in self.results for d in result.differences if d.explained_by)
        return {name: (count, reason(name)) for name, count in sorted(counts.items())}


def run_campaign(jobs: list[Job], workers: int = 1, on_result: Callable[[Result], None] | None = None) -> Campaign:
    """Run every job; ``workers`` > 1 spreads them over that many processes. Results keep the
    jobs' order; ``on_result`` sees each as it comes (for a progress bar)."""
    began = time.monotonic()
    campaign = Campaign()
    for result in _results(jobs, workers):
        campaign.results.append(result)
        if on_result is not None:
            on_result(result)
    campaign.seconds = time.monotonic() - began
    return campaign


def _results(jobs: list[Job], workers: int) -> Iterator[Result]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(run_job, jobs)
        return
    # A fresh interpreter per worker: no sandbox state or tracing instance is inherited.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(run_job, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 8))))


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


# ---- shrinking -----------------------------------------------------------------------------------


def signature(difference: Difference) -> tuple[str, str]:
    """What a disagreement is about, in terms that survive removing other steps (pids shift)."""
    if difference.kind in ("result", "pending"):
        return difference.kind, difference.what
    if difference.kind == "status":
        return difference.kind, difference.what.split()[-1]
    if difference.kind == "trace":
        events = [word.rstrip(":") for word in f"{difference.model} {difference.host}".split() if word.endswith(":")]
        return difference.kind, events[0] if events else difference.what
    return difference.kind, ""


def shrink_result(result: Result, version: str = DEFAULT_VERSION, trace: bool = True) -> Result:
    """The smallest subsequence that still shows ``result``'s first disagreement, run again."""
    target = signature(result.disagreements[0])

    def still_disagrees(candidate: Scenario) -> bool:
        again = run_scenario(candidate, version, trace)
        return not again.error and any(signature(d) == target for d in again.disagreements)

    smallest = shrink(parse(result.text, result.name), still_disagrees)
    final = run_scenario(smallest, version, trace)
    final.name = f"{result.name} (shrunk from {result.steps} steps)"
    return final
