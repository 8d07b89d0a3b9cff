"""forklab bench: the model's speed and scale, beside this machine's kernel doing the same work."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from forklab.bench.run import (
    SECTIONS,
    BenchError,
    Plan,
    Report,
    Row,
    Step,
    Tick,
    bomb_in_subprocess,
    host_reason,
    plan_steps,
    run_plan,
    size_text,
)


def sections(text: str | None) -> tuple[str, ...]:
    if not text:
        return SECTIONS
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(SECTIONS)} (got {text!r})", param_hint="'--only'")
    return chosen


@click.command()
@click.option("--quick", is_flag=True, help="Small counts: a smoke test (under a minute).")
@click.option("--big", is_flag=True, help="Also bomb a model with pid_max=4,194,304 (needs ~16 GiB, minutes).")
@click.option("--only", "only", metavar="LIST", help=f"Comma-separated sections: {', '.join(SECTIONS)}.")
@click.option("--no-host", is_flag=True, help="Measure the model alone.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (for the README).")
@click.option(
    "--png", "png", type=click.Path(dir_okay=False, writable=True), help="Plot fork cost against mapped memory."
)
def bench(quick: bool, big: bool, only: str | None, no_host: bool, as_json: bool, markdown: bool,
          png: str | None) -> None:  # fmt: skip
    """Measure the model, and this machine's kernel doing the same work in the same run: fork,
    vfork and thread cycles, fork cost against mapped memory, bytes per task, a fork bomb to
    pid_max (EAGAIN at exactly the count the kernel's rules predict), and forklab diff's
    throughput. The host side runs as pid 1 of fresh user, pid and mount namespaces, capped by
    a pids cgroup and a time limit.

    Examples:

      forklab bench --quick

      forklab bench --only cycles,bomb --json

      forklab bench --big --markdown --png docs/fork-cost.png
    """
    why_not = "" if no_host else host_reason()
    plan = Plan(quick, big, not no_host and not why_not, sections(only))
    if png:
        check_plotting(Path(png))
    console = Console(stderr=as_json or markdown)
    if why_not:
        console.print(f"[yellow]host side skipped: this machine {why_not}[/yellow]")
    try:
        report = run_with_progress(console, plan)
    except BenchError as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif markdown:
        click.echo(markdown_text(report))
    else:
        show(console, report)
    if png:
        plot(report, Path(png))
        if not as_json:
            console.print(f"fork-cost plot written to {png}")


def run_with_progress(console: Console, plan: Plan) -> Report:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:

        def start(step: Step) -> Tick:
            bar = progress.add_task(step.label, total=step.units)

            def tick(units: float) -> None:
                progress.update(bar, advance=units)

            return tick

        return run_plan(plan_steps(plan, bomb_in_subprocess), start)


def figure(value: float | None, unit: str, per_second: bool = False) -> str:
    if value is None:
        return "—"
    if unit == "µs":
        return f"{value:,.1f} µs" + (f" ({1e6 / value:,.0f}/s)" if per_second and value else "")
    if unit == "s":
        return f"{value:,.1f} s"
    if unit == "GiB":
        return f"{value:,.2f} GiB"
    if unit == "/min":
        return f"{value:,.0f}/min"
    return f"{value:,.0f}" + (" B" if unit == "B" else "")


def figures(row: Row) -> tuple[str, str]:
    """The model's and the host's cells; cycles also per second."""
    rate = row.section == "cycles"
    return figure(row.model, row.unit, rate), figure(row.host, row.unit, rate)


def ratio_text(row: Row) -> str:
    return "" if row.ratio is None else f"{row.ratio:.2f}x"


def header(report: Report) -> str:
    m = report.machine
    return f"{m['date']}, {m['cpu']}, {m['kernel']}, Python {m['python']}"


def show(console: Console, report: Report) -> None:
    table = Table(title=f"forklab bench — {header(report)}")
    for name, justify in (("", "left"), ("model", "right"), ("host", "right"), ("model/host", "right"),
                          ("", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in report.rows:
        table.add_row(row.what, *figures(row), ratio_text(row), row.note)
    console.print(table)
    targets = Table(title="targets", show_header=False)
    for target in report.targets:
        mark = "[green]met[/green]" if target.met else "[red]missed[/red]"
        targets.add_row(mark, target.what, target.figure)
    if report.targets:
        console.print(targets)
    console.print(f"{report.seconds:.0f} s in all")


def markdown_text(report: Report) -> str:
    lines = [f"Measured {header(report)}; `forklab bench` took {report.seconds:.0f} s.", "",
             "| | model | host | model/host | |", "|---|---:|---:|---:|---|"]  # fmt: skip
    for row in report.rows:
        cells = (row.what, *figures(row), ratio_text(row), row.note)
        lines.append("| " + " | ".join(cells) + " |")
    if report.targets:
        lines += ["", "| target | this run | |", "|---|---|---|"]
        lines += [f"| {t.what} | {t.figure} | {'met' if t.met else 'missed'} |" for t in report.targets]
    return "\n".join(lines)


def check_plotting(path: Path) -> None:
    """Before minutes of measuring: can the plot be drawn and written at all?"""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise click.ClickException("--png needs matplotlib (python3 -m pip install matplotlib)") from None
    if not path.parent.is_dir():
        raise click.ClickException(f"cannot write {path}: no directory {path.parent}")


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure_, axes = pyplot.subplots(figsize=(8, 4.5))
    for name, points in report.curves.items():
        if points:
            sizes, costs = zip(*points, strict=True)
            axes.plot(sizes, costs, marker="o", linestyle="-" if len(points) > 1 else "", label=name)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    ticks = [1 << shift for shift in range(20, 41, 4)]
    axes.set_xticks(ticks, [size_text(tick) for tick in ticks])
    axes.set_xlabel("memory mapped by the parent")
    axes.set_ylabel("one fork() call, µs (median)")
    axes.set_title(f"fork cost against mapped memory — {report.machine['kernel']}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure_.tight_layout()
    try:
        figure_.savefig(path, dpi=110)
    except OSError as err:
        raise click.ClickException(f"cannot write {path}: {err.strerror}") from None
    finally:
        pyplot.close(figure_)
