"""forklab run: a scenario's calls and their results, one a line."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from forklab.cli.common import SCENARIO_ARGUMENT, kernel_option, load_scenario, make_console

FAILED = " = -1 "


@click.command()
@SCENARIO_ARGUMENT
@kernel_option("Boot this kernel version instead of the one the scenario names.")
def run(scenario: Path, version: str | None) -> None:
    """Run SCENARIO on the model and print each call and its result.

    SCENARIO is a Python script that uses forklab's API (every call its tasks make is shown,
    with what it prints) or a file of the sequence language of `forklab diff`, one call a
    line. A failed call shows its errno and the check that refused it; wait statuses are
    read out (`exited 3`, `killed by SIGKILL`, `stopped by SIGTRAP, PTRACE_EVENT_STOP`).
    At the end the model's invariants are checked.

    Example: forklab run forklab/diff/scenarios/05-vfork.forklab
    """
    result = load_scenario(scenario, version)
    console = make_console()
    for line in result.lines:
        console.print(Text(line, style="red" if FAILED in line else ""), soft_wrap=True)
    for kernel in result.kernels:
        try:
            kernel.check()
        except AssertionError as err:
            raise click.ClickException(f"{scenario}: the model broke an invariant: {err}") from None
    console.print(Text(f"Linux {result.kernel.version} model: invariants hold", style="green"))
