"""Run one scenario on the model and on the host kernel in lockstep, and compare.

After every step: the step's outcome (value or errno), the outcomes of earlier calls that
were asleep and have now finished, which tasks exist, and each task's /proc status fields.
At the end: the tracepoint lines, in order (sched_process_free apart: the host emits it an
RCU grace period later, so those are compared as a set).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forklab.diff.calls import ADDR, FDS, TASK, spec
from forklab.diff.known import Difference, explain
from forklab.diff.script import FIRST_TASK, BinOp, Const, Expr, Neg, Scenario, ScenarioError, Seq, Step, Sym
from forklab.diff.sides import DEAD, OK, PENDING, UNBOUND, HostSide, ModelSide, Outcome, TaskRef
from forklab.uapi.sched import CLONE_THREAD

# The /proc/<pid>/status fields compared. The rest describe the machine (memory use, CPU
# mitigations, context switches), not the process's creation.
STATUS_FIELDS = (
    "Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "FDSize", "Groups",
    "NStgid", "NSpid", "NSpgid", "NSsid", "Kthread", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn",
    "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Cpus_allowed",
    "Cpus_allowed_list",
)  # fmt: skip
IGNORED_TRACE_FIELDS = ("target_cpu",)


class Side:
    """One side's run: its driver and the names bound so far."""

    def __init__(self, driver: ModelSide | HostSide) -> None:
        self.driver = driver
        self.names: dict[str, Any] = {}
        self.pending: dict[int, tuple[Step, Outcome]] = {}  # step index -> a call still asleep

    @property
    def label(self) -> str:
        return self.driver.name

    def start(self) -> None:
        root = self.driver.start()
        self.names[FIRST_TASK] = TaskRef(root, 1)

    def task(self, name: str, step: Step) -> Any:
        ref = self.names.get(name)
        if not isinstance(ref, TaskRef):
            raise ScenarioError(f"line {step.line}: {name!r} is not a task")
        return ref.handle

    def value(self, expr: Expr, caller: Any, step: Step) -> Any:
        if isinstance(expr, Const):
            return expr.value
        if isinstance(expr, Sym):
            if expr.name not in self.names:
                raise ScenarioError(f"line {step.line}: {expr.name!r} is not defined yet")
            bound = self.names[expr.name]
            if isinstance(bound, TaskRef):
                return self.pid_seen(bound, caller)
            return bound
        if isinstance(expr, Neg):
            operand = self.value(expr.operand, caller, step)
            return ~operand if expr.invert else -operand
        if isinstance(expr, Seq):
            return [self.value(item, caller, step) for item in expr.items]
        return binop(expr, self.value(expr.left, caller, step), self.value(expr.right, caller, step))

    def pid_seen(self, ref: TaskRef, caller: Any) -> int:
        """A task named as an argument: its pid as the caller sees it (the creator's view once it is gone)."""
        if ref.handle is not None and caller is not None:
            pid = self.driver.pid_of(ref.handle, caller)
            if pid:
                return pid
        return ref.pid

    def bind(self, step: Step, outcome: Outcome, actor: Any) -> None:
        if not step.targets or outcome.status not in (OK, PENDING):
            return
        kind = spec(step.call).result
        if kind == TASK:
            if outcome.status == OK:
                self.names[step.targets[0]] = TaskRef(outcome.child, outcome.value)
            elif outcome.child is not None:
                # A vfork parent asleep: the child's pid as the parent will be told it.
                self.names[step.targets[0]] = TaskRef(outcome.child, self.driver.pid_of(outcome.child, actor))
        elif outcome.status != OK:
            return
        elif kind == FDS:
            for name, fd in zip(step.targets, outcome.value, strict=False):
                self.names[name] = fd
        elif kind == ADDR:
            self.names[step.targets[0]] = outcome.raw
        else:
            self.names[step.targets[0]] = outcome.raw if outcome.raw is not None else outcome.value


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "|": operator.or_,
    "&": operator.and_,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "<<": operator.lshift,
}


def binop(expr: BinOp, left: Any, right: Any) -> Any:
    return OPERATORS[expr.op](left, right)


@dataclass
class Report:
    scenario: Scenario
    outcomes: list[tuple[Step, Outcome, Outcome]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    model_names: dict[str, Any] = field(default_factory=dict)  # what each name meant on the model

    @property
    def disagreements(self) -> list[Difference]:
        return [d for d in self.differences if not d.explained_by]

    def add(self, difference: Difference) -> None:
        self.differences.append(explain(difference))


def run(scenario: Scenario, model: ModelSide, host: HostSide, trace: bool = True) -> Report:
    """Run ``scenario`` on both sides and collect every difference."""
    report = Report(scenario)
    sides = (Side(model), Side(host))
    report.model_names = sides[0].names
    try:
        for side in sides:
            side.start()
        for index, step in enumerate(scenario.steps):
            results = run_both(sides, index, step)
            report.outcomes.append((step, results[0], results[1]))
            compare_outcomes(report, index, step, *results)
            settle_pending(report, index, sides)
            compare_tasks(report, index, sides)
        if trace:
            compare_traces(report, sides)
    finally:
        for side in sides:
            side.driver.close()
    return report


def run_both(sides: tuple[Side, Side], index: int, step: Step) -> list[Outcome]:
    """The step on each side. A name only one side lacks (an earlier step went differently
    there) is that side's outcome; a name neither side has is an error in the scenario."""
    results: list[Outcome] = []
    errors: list[ScenarioError] = []
    for side in sides:
        try:
            results.append(run_step(side, index, step))
        except ScenarioError as err:
            errors.append(err)
            results.append(Outcome(UNBOUND))
    if len(errors) == len(sides):
        raise errors[0]
    return results


def run_step(side: Side, index: int, step: Step) -> Outcome:
    actor = side.task(step.actor, step)
    if actor is None:
        return Outcome(DEAD)
    args = [side.value(arg, actor, step) for arg in step.args]
    kwargs = {key: side.value(value, actor, step) for key, value in step.kwargs}
    outcome = side.driver.call(actor, step.call, args, kwargs)
    outcome.args = (tuple(args), kwargs)
    side.bind(step, outcome, actor)
    if outcome.status == PENDING:
        side.pending[index] = (step, outcome)
    return outcome


def compare_outcomes(report: Report, index: int, step: Step, model: Outcome, host: Outcome) -> None:
    if spec(step.call).result == ADDR and model.status == host.status == OK:
        return  # the two address spaces differ: only success is compared
    if (model.status, model.value, model.errno) != (host.status, host.value, host.errno):
        report.add(Difference(index, "result", str(step), str(model), str(host)))


def settle_pending(report: Report, index: int, sides: tuple[Side, Side]) -> None:
    """Calls that slept: compare their outcomes once both sides have them."""
    model, host = sides
    for key in sorted(set(model.pending) | set(host.pending)):
        step = (model.pending.get(key) or host.pending[key])[0]
        done = [side.driver.finished(side.pending[key][1]) if key in side.pending else None for side in sides]
        if done[0] is None and done[1] is None:
            continue  # both still asleep
        model.pending.pop(key, None)
        host.pending.pop(key, None)
        first, second = (str(outcome) if outcome is not None else "still asleep" for outcome in done)
        if first != second:
            report.add(Difference(index, "pending", f"{step} (asleep since step {key + 1})", first, second))


def compare_tasks(report: Report, index: int, sides: tuple[Side, Side]) -> None:
    found = [{side.driver.sandbox_pid(task): task for task in side.driver.tasks()} for side in sides]
    if set(found[0]) != set(found[1]):
        report.add(Difference(index, "tasks", "tasks in the sandbox", str(sorted(found[0])), str(sorted(found[1]))))
    for pid in sorted(set(found[0]) & set(found[1])):
        statuses = [sides[n].driver.status(found[n][pid]) for n in (0, 1)]
        for name in STATUS_FIELDS:
            # Compared as words: the host's parser trims what the model's text keeps.
            values = [" ".join(status.get(name, "").split()) for status in statuses]
            if values[0] != values[1]:
                report.add(Difference(index, "status", f"pid {pid} {name}", values[0], values[1]))


def compare_traces(report: Report, sides: tuple[Side, Side]) -> None:
    """The same lines in the same order; sched_process_free apart, compared as a set.

    Tasks the host runs at the same time (a namespace's tasks killed together) interleave by
    timing there: lines that differ only in that interleaving, each task's own lines still in
    order, are an explained difference ("concurrent-order").
    """
    lines = [[comparable(line) for line in side.driver.trace()] for side in sides]
    ordered = [[line for line in side if line[1] != "sched_process_free"] for side in lines]
    frees = [Counter(line[1:] for line in side if line[1] == "sched_process_free") for side in lines]
    if ordered[0] != ordered[1]:
        shown = render_lines(ordered[0]), render_lines(ordered[1])
        if same_but_order(ordered[0], ordered[1]):
            report.add(Difference(-1, "trace", "order of trace lines across tasks", *shown))
        elif group_deaths(ordered[0]) == group_deaths(ordered[1]) and Counter(by_group(ordered[0])) == Counter(
            by_group(ordered[1])
        ):
            report.add(Difference(-1, "trace", "which thread of a dying group exits last", *shown))
        else:
            for position, (ours, theirs) in enumerate(zip(ordered[0], ordered[1], strict=False)):
                if ours != theirs:
                    report.add(
                        Difference(-1, "trace", f"trace line {position + 1}", render_line(ours), render_line(theirs))
                    )
                    break
            if len(ordered[0]) != len(ordered[1]):
                report.add(Difference(-1, "trace", "number of trace lines", str(len(ordered[0])), str(len(ordered[1]))))
    if frees[0] != frees[1]:
        listed = [", ".join(sorted(render_line((0, *line)) for line in free.elements())) for free in frees]
        report.add(Difference(-1, "trace", "sched_process_free lines", listed[0], listed[1]))


Line = tuple[int, str, tuple[tuple[str, str], ...]]


def comparable(line: tuple[int, str, dict[str, str]]) -> Line:
    context, event, fields = line
    kept = tuple((key, value) for key, value in fields.items() if key not in IGNORED_TRACE_FIELDS)
    return (context, event, kept)


def same_but_order(ours: list[Line], theirs: list[Line]) -> bool:
    """The same lines, each task's own in the same order: only the interleaving differs."""
    return Counter(ours) == Counter(theirs) and per_task(ours) == per_task(theirs)


def by_group(lines: list[Line]) -> list[Line]:
    """The lines with sched_process_exit's group_dead blanked and each line's task replaced by
    its thread group (from the CLONE_THREAD clones in the trace): which thread of a dying group
    exits last, and so also reaps for a pid namespace, no longer shows."""
    group: dict[int, int] = {}
    blanked = []
    for context, event, fields in lines:
        values = dict(fields)
        if event == "task_newtask" and int(values.get("clone_flags", "0"), 16) & CLONE_THREAD:
            group[int(values["pid"])] = group.get(context, context)
        if event == "sched_process_exit":
            fields = tuple((key, "?" if key == "group_dead" else value) for key, value in fields)
        blanked.append((group.get(context, context), event, fields))
    return blanked


def group_deaths(lines: list[Line]) -> int:
    return sum(event == "sched_process_exit" and ("group_dead", "true") in fields for _, event, fields in lines)


def per_task(lines: list[Line]) -> dict[int, list[Line]]:
    tasks: dict[int, list[Line]] = {}
    for line in lines:
        tasks.setdefault(line[0], []).append(line)
    return tasks


def render_line(line: Line) -> str:
    context, event, fields = line
    return f"[{context}] {event}: " + " ".join(f"{key}={value}" for key, value in fields)


def render_lines(lines: list[Line]) -> str:
    return " / ".join(render_line(line) for line in lines)
