"""forklab trace: run a scenario with the function tracer on, and print what the kernel did."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from forklab.api import Kernel
from forklab.cli.scenario import ScenarioError, ScenarioRun, run_scenario
from forklab.kernel import ftrace
from forklab.kernel.version import DEFAULT_VERSION, PROFILES, KernelVersion
from forklab.render.ftrace import function_graph, function_trace_text
from forklab.render.perfetto import chrome_trace

FORMATS = ("graph", "ftrace", "perfetto")

kernel_option = click.option(
    "--kernel",
    "version",
    type=click.Choice(PROFILES),
    default=None,
    help=f"Boot this kernel version instead of the scenario's own [default: the scenario's, or {DEFAULT_VERSION}].",
)


@contextmanager
def traced_scenario(path: str, version: str | None, listener: ftrace.Listener | None = None) -> Iterator[ScenarioRun]:
    """Run the scenario with every kernel it boots traced from its first call; failures become
    one-line click errors. The tracers stay readable inside the block."""
    kernels: list[Kernel] = []

    def on_boot(kernel: Kernel) -> None:
        kernels.append(kernel)
        ftrace.enable(kernel.machine, listener)

    try:
        try:
            run = run_scenario(Path(path), version, on_boot)
        except ScenarioError as err:
            raise click.ClickException(str(err)) from None
        yield run
    finally:
        for kernel in kernels:
            ftrace.disable(kernel.machine)


def check_function(option: str, name: str | None, version: str | None) -> None:
    """A function name the tracer knows for that kernel version, or a one-line error."""
    known = ftrace.traceable_functions(KernelVersion.of(version or DEFAULT_VERSION))
    if name is None or name in known:
        return
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"traced: {', '.join(known)}"
    raise click.ClickException(f"{option} {name}: not a traced kernel function; {hint}")


def render(run: ScenarioRun, fmt: str, graph_function: str | None) -> str:
    machine = run.kernel.machine
    tracer = machine.ftrace
    assert tracer is not None
    if fmt == "graph":
        return function_graph(tracer.records, machine.nr_cpu_ids, graph_function)
    if fmt == "ftrace":
        return function_trace_text(tracer.records, machine.trace, machine.nr_cpu_ids)
    return json.dumps(chrome_trace(tracer.records, machine.trace), indent=1) + "\n"


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="graph", show_default=True,
              help="graph: function_graph text; ftrace: the function tracer's lines among the tracepoints; "
              "perfetto: Chrome trace-event JSON.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to FILE instead of standard output.")  # fmt: skip
@click.option("--graph-function", default=None, help="With --format graph: only the calls made within this function.")
@kernel_option
def trace(scenario: str, fmt: str, output: str | None, graph_function: str | None, version: str | None) -> None:
    """Run SCENARIO (a Python script using forklab, or a .forklab sequence file) with the model's
    function tracer on, and print every traced kernel function it went through, as ftrace would
    on a real kernel. Times are the model's virtual clock, which advances per system call.
    With several kernels booted, the last one is shown.

    Examples:

      forklab trace fork.forklab                      # function_graph text
      forklab trace fork.forklab --graph-function copy_process
      forklab trace fork.py --format perfetto -o fork.json   # open in ui.perfetto.dev
    """
    check_function("--graph-function", graph_function, version)
    with traced_scenario(scenario, version) as run:
        text = render(run, fmt, graph_function)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text)
    except OSError as err:
        raise click.ClickException(f"{output}: cannot write it: {err.strerror}") from None
