"""forklab diff: the same sequences on the model and on this machine's kernel, compared."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from forklab.diff.campaign import (
    BUILTIN,
    DEFAULT_STEPS,
    Campaign,
    Job,
    Result,
    builtin_scenarios,
    default_workers,
    random_jobs,
    run_campaign,
    scenario_jobs,
    shrink_result,
)
from forklab.diff.script import ScenarioError
from forklab.kernel.version import DEFAULT_VERSION, PROFILES


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--random", "count", type=click.IntRange(min=0), default=0, help="Also run N random sequences.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed of the random sequences.")
@click.option("--steps", type=click.IntRange(min=1, max=500), default=DEFAULT_STEPS, show_default=True,
              help="Calls per random sequence.")  # fmt: skip
@click.option("--kernel", "version", type=click.Choice(PROFILES), default=DEFAULT_VERSION, show_default=True,
              help="The model's kernel version (compare with the host's own).")  # fmt: skip
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: one per CPU].")  # fmt: skip
@click.option("--shrink", "shrink_count", type=click.IntRange(min=0), default=3, show_default=True,
              help="Shrink and show this many disagreeing sequences.")  # fmt: skip
@click.option("--no-trace", is_flag=True, help="Do not compare tracepoint lines (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def diff(paths: tuple[str, ...], count: int, seed: int, steps: int, version: str, jobs: int | None,
         shrink_count: int, no_trace: bool, as_json: bool) -> None:  # fmt: skip
    """Run sequences of system calls on the model and on this machine's kernel, and show where
    they differ.

    PATHS are scenario files (one call per line, like `t1 = t0.fork()`) or directories of
    *.forklab files. With neither PATHS nor --random, the built-in scenarios run. A
    disagreement is shrunk to the fewest steps that still show it and printed as a scenario
    and as Python you can paste. Exit status: 0 when every sequence agrees (or differs only
    in known, explained ways), 1 otherwise.

    Examples:

      forklab diff                          # the built-in scenarios

      forklab diff --random 500 --seed 7    # 500 random sequences, seeds 7..506

      forklab diff my.forklab --json
    """
    from forklab.host import host_available

    available, why = host_available()
    if not available:
        raise click.ClickException(f"cannot run sequences on this machine's kernel: it {why}")
    try:
        selected = scenario_jobs(paths or ([] if count else builtin_scenarios()), version, not no_trace)
    except ScenarioError as err:
        raise click.ClickException(str(err)) from None
    selected += random_jobs(count, seed, steps, version, not no_trace)
    if not selected:
        raise click.ClickException(f"nothing to run: no scenario files in {BUILTIN} and no --random")
    console = Console(stderr=as_json)
    campaign = run_with_progress(console, selected, jobs or default_workers(), quiet=as_json)
    shrunk = []
    for result in disagreeing(campaign)[:shrink_count]:
        with console.status(f"shrinking {result.name} ..."):
            shrunk.append(shrink_result(result, version, not no_trace))
    if as_json:
        click.echo(json.dumps(as_dict(campaign, shrunk, version), indent=2))
    else:
        show(console, campaign, shrunk, version)
    raise SystemExit(0 if campaign.passed else 1)


def run_with_progress(console: Console, jobs: list[Job], workers: int, quiet: bool) -> Campaign:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[tally]}"))  # fmt: skip
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        bar = progress.add_task("sequences", total=len(jobs), tally="")
        seen: dict[str, int] = {}

        def done(result: Result) -> None:
            seen[result.verdict] = seen.get(result.verdict, 0) + 1
            tally = ", ".join(f"{n} {verdict}" for verdict, n in sorted(seen.items()))
            progress.update(bar, advance=1, tally=tally)

        return run_campaign(jobs, workers, done)


def disagreeing(campaign: Campaign) -> list[Result]:
    return [result for result in campaign.results if result.verdict == "disagrees"]


def host_kernel() -> str:
    return platform.release()


def show(console: Console, campaign: Campaign, shrunk: list[Result], version: str) -> None:
    summary = Table(title=f"model {version} against this machine's Linux {host_kernel()}", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    results = campaign.results
    summary.add_row("sequences", str(len(results)))
    summary.add_row("  agree", str(campaign.count("agrees")))
    summary.add_row("  agree but for explained differences", str(campaign.count("explained")))
    summary.add_row("  disagree", str(campaign.count("disagrees")), style="red" if campaign.count("disagrees") else "")
    summary.add_row("  could not run", str(campaign.count("error")), style="red" if campaign.count("error") else "")
    summary.add_row("steps", str(campaign.steps))
    summary.add_row("  with the same result on both", str(campaign.steps_agreeing))
    summary.add_row("wall time", f"{campaign.seconds:.1f} s")
    console.print(summary)
    kinds = [(kind, str(n)) for kind, n in campaign.disagreements_by_kind().most_common()]
    counts(console, "disagreements by kind", ("kind", "count"), kinds)
    explained = [(name, str(n), why) for name, (n, why) in campaign.explained().items()]
    counts(console, "explained differences (known causes, not disagreements)", ("name", "seen", "why"), explained)
    for result in (r for r in results if r.error):
        console.print(f"[red]could not run[/red] {result.name}: {result.error}")
    for result in shrunk:
        show_counterexample(console, result)
    left = len(disagreeing(campaign)) - len(shrunk)
    if left > 0:
        names = ", ".join(r.name for r in disagreeing(campaign)[len(shrunk) :][:20])
        console.print(f"{left} more disagreeing sequence(s), not shrunk: {names}")


def counts(console: Console, title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table of names and how often they were seen (the second column), if there are any."""
    if not rows:
        return
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index == 1 else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def show_counterexample(console: Console, result: Result) -> None:
    console.rule(result.name)
    if result.error or not result.disagreements:
        what = result.error or "it agreed when run again: the difference depends on timing on the host"
        console.print(f"[yellow]{what}[/yellow]")
        return
    table = Table(show_lines=False)
    for column in ("step", "call", "model", "host"):
        table.add_column(column, overflow="fold")
    for index, (step, model, host) in enumerate(result.outcomes):
        style = "red" if model != host else ""
        table.add_row(str(index + 1), step, model, host, style=style)
    console.print(table)
    for d in result.disagreements:
        where = f"after step {d.step + 1}" if d.step >= 0 else "at the end"
        console.print(f"[red]differs[/red] {where}: {d.kind} {d.what}: model {d.model!r}, host {d.host!r}")
    console.print("As a scenario (save it as a .forklab file and run forklab diff on it):")
    console.print(result.text, highlight=False, markup=False)
    console.print("As Python, on the model:")
    console.print(Syntax(result.python, "python", word_wrap=True))


def as_dict(campaign: Campaign, shrunk: list[Result], version: str) -> dict[str, Any]:
    return {
        "model": version,
        "host": host_kernel(),
        "sequences": len(campaign.results),
        "agree": campaign.count("agrees"),
        "explained": campaign.count("explained"),
        "disagree": campaign.count("disagrees"),
        "errors": campaign.count("error"),
        "steps": campaign.steps,
        "steps_agreeing": campaign.steps_agreeing,
        "seconds": round(campaign.seconds, 3),
        "disagreements_by_kind": dict(campaign.disagreements_by_kind()),
        "explained_differences": {name: {"count": n, "reason": why} for name, (n, why) in campaign.explained().items()},
        "results": [
            {
                "name": r.name,
                "verdict": r.verdict,
                "steps": r.steps,
                "error": r.error,
                "differences": [d.__dict__ for d in r.differences],
            }
            for r in campaign.results
            if r.verdict != "agrees"
        ],
        "shrunk": [
            {
                "name": r.name,
                "scenario": r.text,
                "python": r.python,
                "differences": [d.__dict__ for d in r.differences],
            }
            for r in shrunk
        ],
    }
