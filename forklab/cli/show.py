"""forklab tree, ps and status: what a scenario (or the demo) leaves behind."""

from __future__ import annotations

from pathlib import Path

import click

from forklab.api import TaskGoneError, TaskHandle
from forklab.cli.common import SCENARIO_PATH, kernel_option, make_console, scenario_or_demo
from forklab.cli.scenario import ScenarioRun
from forklab.render.graph import GraphvizMissing, draw
from forklab.render.ps import ps_table, status_text
from forklab.render.tree import process_forest, process_tree

SCENARIO_OPTION = click.option(
    "--scenario",
    type=SCENARIO_PATH,
    default=None,
    help="A scenario (.py or .forklab) to run first [default: the demo's machine].",
)
OUTPUT = click.Path(dir_okay=False, writable=True, path_type=Path)
KERNEL_OPTION = kernel_option("The kernel version to boot [default: the scenario's, or 6.18].")


@click.command(short_help="The process tree a scenario leaves: in the terminal, SVG or PNG.")
@click.argument("scenario", required=False, type=SCENARIO_PATH)
@click.option("--svg", type=OUTPUT, help="Also draw it to FILE as SVG, through Graphviz.")
@click.option("--png", type=OUTPUT, help="Also draw it to FILE as PNG, through Graphviz.")
@KERNEL_OPTION
def tree(scenario: Path | None, svg: Path | None, png: Path | None, version: str | None) -> None:
    """Draw the process tree SCENARIO leaves (with none, the demo's): processes under their real
    parents, threads with their process, new namespaces as a frame around what is in them, and
    what a child shares with its parent. --svg and --png draw it with Graphviz.

    Examples:

      forklab tree forklab/diff/scenarios/07-pid-namespaces.forklab

      forklab tree --svg docs/process-tree.svg
    """
    run = scenario_or_demo(scenario, version)
    make_console().print(process_tree(run.kernel, run.names))
    for path, fmt in ((svg, "svg"), (png, "png")):
        if path is None:
            continue
        try:
            draw(process_forest(run.kernel, run.names), path, fmt)
        except GraphvizMissing as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            raise click.ClickException(f"cannot write {path}: {err.strerror or err}") from None
        click.echo(f"wrote {path}")


@click.command(short_help="Every task a scenario leaves, as ps -eL lists them.")
@SCENARIO_OPTION
@KERNEL_OPTION
def ps(scenario: Path | None, version: str | None) -> None:
    """List every task a scenario leaves (with none, the demo's), threads and zombies included:
    PID, PPID, TGID, STAT and COMMAND as ps -eL shows them, and NSPID, the task's pid in each pid
    namespace from the outermost in. Tasks of a .forklab scenario show their names (t0, t1, ...).

    Example: forklab ps --scenario forklab/diff/scenarios/07-pid-namespaces.forklab
    """
    run = scenario_or_demo(scenario, version)
    make_console().print(ps_table(run.kernel, run.names))


@click.command(short_help="/proc/PID/status of a task a scenario leaves.")
@click.argument("pid")
@SCENARIO_OPTION
@KERNEL_OPTION
def status(pid: str, scenario: Path | None, version: str | None) -> None:
    """Print /proc/PID/status of a task a scenario leaves (with none, the demo's). PID is as the
    initial pid namespace numbers it (see forklab ps), or a .forklab scenario's task name.

    Examples:

      forklab status 3

      forklab status t5 --scenario docs/tour.forklab
    """
    run = scenario_or_demo(scenario, version)
    click.echo(status_text(find_task(run, pid)), nl=False)


def find_task(run: ScenarioRun, pid: str) -> TaskHandle:
    """The task a pid or a scenario's task name stands for, while it has a pid (not yet reaped)."""
    named = run.names.get(pid)
    if named is not None and named.task_struct.thread_pid is None:
        raise click.BadParameter(f"{pid} has been reaped", param_hint="PID")
    try:
        return run.kernel.task(named.pid if named is not None else int(pid))
    except ValueError:
        raise click.BadParameter(
            f"{pid!r} is neither a pid nor a task name of the scenario", param_hint="PID"
        ) from None
    except TaskGoneError:
        raise click.BadParameter(f"no task has pid {pid}", param_hint="PID") from None
