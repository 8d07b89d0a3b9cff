"""The bench's plan (what to measure, how much of it) and its report: rows of model and host
figures side by side, the fork-cost curves and the targets."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from forklab.bench import model
from forklab.bench.bomb import BombResult
from forklab.bench.predict import Limits, predict
from forklab.bench.throughput import diff_throughput
from forklab.diff.script import ScenarioError
from forklab.host import HostError, HostUnavailable
from forklab.host import bench as host
from forklab.host.build import host_available

SECTIONS = ("cycles", "mapped", "footprint", "bomb", "diff")
MiB, GiB, TiB = model.MiB, model.GiB, model.TiB
BIG_PID_MAX = 4_194_304  # PID_MAX_LIMIT on 64-bit
BIG_MEMORY = 16 * GiB
BIG_SECONDS = 300.0
MANY_VMAS = 1000
# The fork-cost curves, by the name the plot shows.
ONE_VMA = "model, 1 VMA (first 64 MiB written)"
MANY = "model, 1 TiB in 1,000 VMAs"
HOST_CURVE = "host, every page touched"


class BenchError(Exception):
    """A measurement of the model could not finish (the CLI shows it as one line)."""


@dataclass(frozen=True)
class Plan:
    """How much of each measurement: ``--quick`` is a smoke test, the full run is the README's."""

    quick: bool
    big: bool
    host: bool
    sections: tuple[str, ...]

    @property
    def cycles(self) -> int:
        """Cycles per round: short rounds, so that some fall between the bursts of a busy machine."""
        return 1000 if self.quick else 2000

    @property
    def rounds(self) -> int:
        return 3 if self.quick else 15

    @property
    def model_sizes(self) -> list[int]:
        return [MiB, GiB, TiB] if self.quick else [MiB, 16 * MiB, 256 * MiB, 4 * GiB, 64 * GiB, TiB]

    @property
    def host_sizes(self) -> list[int]:
        """Up to a quarter of the memory available now, never more than 4 GiB."""
        sizes = [MiB, 64 * MiB] if self.quick else [MiB, 16 * MiB, 256 * MiB, GiB, 4 * GiB]
        return [size for size in sizes if size <= min(4 * GiB, available_memory() // 4)]

    @property
    def forks_per_size(self) -> int:
        return 20 if self.quick else 100

    @property
    def footprint_tasks(self) -> int:
        return 500 if self.quick else 5000

    @property
    def bombs(self) -> list[int]:
        return [32768, BIG_PID_MAX] if self.big else [32768]

    @property
    def host_bomb(self) -> int:
        return 1024 if self.quick else 4096

    @property
    def sequences(self) -> int:
        return 2 if self.quick else 30


@dataclass
class Row:
    """One figure for the model and, where the host does the same work, for the host."""

    section: str
    what: str
    unit: str  # "µs", "B", "s", "GiB", "forks" or "/min"
    model: float | None
    host: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times the model's figure is better than the host's: for times, host/model;
        for rates, model/host."""
        if not self.model or not self.host:
            return None
        if self.unit == "µs":
            return self.host / self.model
        if self.unit == "/min":
            return self.model / self.host
        return None


@dataclass
class Target:
    what: str
    figure: str
    met: bool


@dataclass
class Report:
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    # Fork cost curves for the plot: name -> [(bytes mapped, µs)]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, section: str, what: str) -> Row | None:
        return next((r for r in self.rows if r.section == section and r.what == what), None)

    def as_dict(self) -> dict[str, object]:
        rows = [{**asdict(row), "ratio": row.ratio} for row in self.rows]
        return {"machine": self.machine, "seconds": self.seconds, "rows": rows,
                "targets": [asdict(t) for t in self.targets], "curves": self.curves}  # fmt: skip


def available_memory() -> int:
    for line in read_proc("meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_info() -> dict[str, str]:
    cpu = "unknown CPU"
    try:
        for line in read_proc("cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "kernel": f"Linux {platform.release()}",
        "python": platform.python_version(),
    }


# ---- the steps ----------------------------------------------------------------------------------

Tick = Callable[[float], None]  # advance the progress bar by this many units of the step


@dataclass(frozen=True)
class Step:
    section: str
    label: str
    units: float  # how much progress it is worth
    run: Callable[[Report, Tick], None]


def host_figure(report: Report, row: Row, measure: Callable[[], float]) -> None:
    """The host's figure for ``row``; a host that cannot run it leaves a note instead."""
    try:
        row.host = measure()
    except (HostError, HostUnavailable) as err:
        row.note = f"host: {err}"
    report.rows.append(row)


def cycle_steps(plan: Plan) -> list[Step]:
    """Model and host rounds alternate, so that both meet the same load; the best round counts."""
    n, rounds = plan.cycles, plan.rounds
    kinds = (("fork", "fork + exit + wait", model.fork_exit_wait),
             ("vfork", "vfork + exit + wait", model.vfork_exit_wait),
             ("thread", "thread create + exit + join", model.thread_create_join))  # fmt: skip
    steps = []
    for kind, what, workload in kinds:

        def step(report: Report, tick: Tick, kind: str = kind, what: str = what,
                 workload: Callable[[], Callable[[int], None]] = workload) -> None:  # fmt: skip
            work = workload()
            row = Row("cycles", what, "µs", None)
            model_ns = host_ns = float("inf")
            for _ in range(rounds):
                model_ns = min(model_ns, model.per_op_ns(work, n))
                tick(1)
                if plan.host and not row.note:
                    try:
                        host_ns = min(host_ns, host.cycle_ns(kind, n))
                    except (HostError, HostUnavailable) as err:
                        row.note = f"host: {err}"
                tick(1)
            row.model = model_ns / 1000
            row.host = host_ns / 1000 if host_ns < float("inf") else None
            report.rows.append(row)

        steps.append(Step("cycles", what, 2 * rounds, step))

    def python_step(report: Report, tick: Tick) -> None:
        fork = report.row("cycles", "fork + exit + wait")
        row = Row("cycles", "fork + exit + wait, host in Python (os.fork)", "µs", fork.model if fork else None)
        host_figure(report, row, lambda: min(host.python_fork_ns(n // 2) for _ in range(min(rounds, 5))) / 1000)
        tick(1)

    if plan.host:
        steps.append(Step("cycles", "Python's os.fork", 1, python_step))
    return steps


def mapped_steps(plan: Plan) -> list[Step]:
    def step(report: Report, tick: Tick) -> None:
        forks = plan.forks_per_size
        curve = report.curves.setdefault(ONE_VMA, [])
        for size in plan.model_sizes:
            curve.append((size, model.fork_cost_ns(size, 1, forks) / 1000))
            tick(1)
        many = model.fork_cost_ns(TiB, MANY_VMAS, forks) / 1000
        report.curves[MANY] = [(TiB, many)]
        tick(1)
        host_curve: dict[int, float] = {}
        if plan.host:
            try:
                for size in plan.host_sizes:
                    host_curve[size] = host.fork_latency_ns(size, max(10, forks // 3))[0] / 1000
                    tick(1)
            except (HostError, HostUnavailable) as err:
                report.rows.append(Row("mapped", "host fork latency", "µs", None, note=f"host: {err}"))
            report.curves[HOST_CURVE] = sorted(host_curve.items())
        model_curve = dict(curve)
        for size in sorted(model_curve.keys() | host_curve.keys()):
            what = f"fork() with {size_text(size)} mapped"
            report.rows.append(Row("mapped", what, "µs", model_curve.get(size), host_curve.get(size)))
        report.rows.append(Row("mapped", f"fork() with 1 TiB mapped in {MANY_VMAS:,} VMAs", "µs", many))

    return [Step("mapped", "fork cost against mapped memory", len(plan.model_sizes) + 1 + len(plan.host_sizes), step)]


def footprint_steps(plan: Plan) -> list[Step]:
    def step(report: Report, tick: Tick) -> None:
        process, thread = model.bytes_per_task(plan.footprint_tasks)
        report.rows.append(Row("footprint", "bytes per live forked process", "B", process))
        report.rows.append(Row("footprint", "bytes per live thread", "B", thread))
        tick(1)

    return [Step("footprint", "bytes per live task", 1, step)]


def bomb_steps(plan: Plan, runner: Callable[[int, Tick], BombResult]) -> list[Step]:
    steps = []
    for pid_max in plan.bombs:

        def step(report: Report, tick: Tick, pid_max: int = pid_max) -> None:
            result = runner(pid_max, tick)
            label = f"pid_max={pid_max:,}"
            note = f"predicted {result.predicted:,} ({result.predicted_check}); {'exact' if result.exact else 'MISSED'}"
            report.rows.append(Row("bomb", f"model bomb {label}: forks before EAGAIN", "forks", result.forks,
                                   note=note))  # fmt: skip
            report.rows.append(Row("bomb", f"model bomb {label}: time", "s", result.seconds,
                                   note=f"{result.cpu_seconds:,.0f} s of CPU"))  # fmt: skip
            report.rows.append(Row("bomb", f"model bomb {label}: peak memory", "GiB", result.peak_rss / GiB))
            report.rows.append(Row("bomb", f"model bomb {label}: bytes per process", "B", result.bytes_per_process))
            figure = f"{result.forks:,} forks, predicted {result.predicted:,}"
            report.targets.append(Target(f"bomb at {label} fails with EAGAIN at exactly the predicted count", figure,
                                         result.exact))  # fmt: skip
            if pid_max == BIG_PID_MAX:
                figure = f"{result.seconds:.0f} s ({result.cpu_seconds:.0f} s CPU), {result.peak_rss / GiB:.1f} GiB"
                fits = result.seconds <= BIG_SECONDS and result.peak_rss <= BIG_MEMORY
                report.targets.append(Target("pid_max=4,194,304 bomb within 16 GiB and 5 minutes", figure, fits))

        steps.append(Step("bomb", f"model bomb to pid_max={pid_max:,}", pid_max, step))

    def host_step(report: Report, tick: Tick) -> None:
        pid_max = plan.host_bomb
        what = f"host bomb as pid 1 of a new pid namespace, pid_max={pid_max:,}: forks before EAGAIN"
        try:
            found = host.host_bomb(pid_max)
        except (HostError, HostUnavailable) as err:
            report.rows.append(Row("bomb", what, "forks", None, note=f"host: {err}"))
            return
        expected = predict(host_limits(pid_max, found.per_namespace_pid_max))
        how = "its own pid_max" if found.per_namespace_pid_max else "a pids cgroup (no pid_max per namespace)"
        note = f"capped by {how}; predicted {expected.forks:,} ({expected.check})"
        report.rows.append(Row("bomb", what, "forks", None, found.children, note))
        exact = found.children == expected.forks and found.errno == 11
        report.targets.append(Target("host bomb fails with EAGAIN at exactly the predicted count",
                                     f"{found.children:,} forks, predicted {expected.forks:,}", exact))  # fmt: skip
        tick(1)

    if plan.host:
        steps.append(Step("bomb", "host bomb", 1, host_step))
    return steps


def host_limits(pid_max: int, per_namespace: bool) -> Limits:
    """What the host bomb's pid 1 meets: a fresh pid namespace (only pid 1 taken, the cursor
    after it), the machine's threads-max and threads, its RLIMIT_NPROC, the bomb's pids cgroup
    (pid 1 in it already)."""
    own_max = pid_max if per_namespace else int(read_proc("sys/kernel/pid_max"))
    threads = int(read_proc("loadavg").split()[3].split("/")[1])
    nproc = resource_nproc()
    return Limits(own_max, [1], 2, int(read_proc("sys/kernel/threads-max")), threads, nproc, 0,
                  host.bomb_cgroup_max(pid_max), 1)  # fmt: skip


def resource_nproc() -> int | None:
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def read_proc(name: str) -> str:
    with open(f"/proc/{name}") as file:
        return file.read()


def diff_steps(plan: Plan) -> list[Step]:
    def step(report: Report, tick: Tick) -> None:
        what = f"forklab diff: random sequences of 20 calls per minute ({plan.sequences} sequences)"
        try:
            found = diff_throughput(plan.sequences, 20, lambda: tick(1))
        except (HostError, ScenarioError) as err:
            report.rows.append(Row("diff", what, "/min", None, note=f"host: {err}"))
            return
        report.rows.append(Row("diff", what, "/min", found.model_per_minute, found.host_per_minute,
                               f"both sides compared: {found.diff_per_minute:,.0f}/min"))  # fmt: skip

    return [Step("diff", "forklab diff throughput", plan.sequences, step)] if plan.host else []


def plan_steps(plan: Plan, runner: Callable[[int, Tick], BombResult]) -> list[Step]:
    makers: dict[str, Callable[[], list[Step]]] = {
        "cycles": lambda: cycle_steps(plan),
        "mapped": lambda: mapped_steps(plan),
        "footprint": lambda: footprint_steps(plan),
        "bomb": lambda: bomb_steps(plan, runner),
        "diff": lambda: diff_steps(plan),
    }
    return [step for section in plan.sections for step in makers[section]()]


def bomb_in_subprocess(pid_max: int, tick: Tick) -> BombResult:
    """The model's bomb in a process of its own, so that its peak memory is its own."""
    command = [sys.executable, "-m", "forklab.bench.bomb", str(pid_max)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stderr is not None
        last = 0
        result = None
        for line in child.stdout:
            if line.startswith("forks "):
                forks = int(line.split()[1])
                tick(forks - last)
                last = forks
            elif line.startswith("{"):
                result = BombResult(**json.loads(line))
        errors = child.stderr.read()
    if result is None:
        lines = errors.strip().splitlines()
        raise BenchError(f"the model's bomb failed: {lines[-1] if lines else child.returncode}")
    tick(pid_max - last)
    return result


def size_text(size: int) -> str:
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


# ---- targets ------------------------------------------------------------------------------------


def judge(report: Report) -> None:
    """The issue's targets that this run's figures can decide."""

    def faster(what: str, times: float) -> None:
        row = report.row("cycles", what)
        if row is not None and row.ratio is not None:
            figure = f"{row.ratio:.2f}x (model {row.model:.1f} µs, host {row.host:.1f} µs)"
            report.targets.append(Target(f"model {what} at least {times:g}x the host's rate", figure,
                                         row.ratio >= times))  # fmt: skip

    faster("fork + exit + wait", 5)
    faster("thread create + exit + join", 2)
    curve = report.curves.get(ONE_VMA, [])
    if len(curve) > 1:
        costs = [cost for _, cost in curve]
        spread = max(costs) / min(costs)
        report.targets.append(Target(f"model fork cost flat (within 2x) from {size_text(curve[0][0])} to "
                                     f"{size_text(curve[-1][0])} mapped", f"{spread:.2f}x", spread <= 2))  # fmt: skip
    many = report.curves.get(MANY)
    if many:
        cost = many[0][1]
        report.targets.append(Target("model fork under 1 ms with 1 TiB in 1,000 VMAs", f"{cost:.0f} µs", cost < 1000))
    process = report.row("footprint", "bytes per live forked process")
    if process is not None and process.model is not None:
        report.targets.append(Target("at most 4 KiB per live forked task", f"{process.model:,.0f} B",
                                     process.model <= 4096))  # fmt: skip


def ignore(units: float) -> None:
    """A tick that shows nothing."""


def run_plan(steps: list[Step], start: Callable[[Step], Tick] = lambda step: ignore) -> Report:
    """Run every step; ``start(step)`` gives the tick of the step about to run."""
    report = Report(machine_info())
    began = time.perf_counter()
    for step in steps:
        step.run(report, start(step))
    judge(report)
    report.seconds = time.perf_counter() - began
    return report


def host_reason() -> str:
    """Empty when the host side can run here, else why not."""
    available, why = host_available()
    return "" if available else why
