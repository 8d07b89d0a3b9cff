"""What the subcommands share: the console, the kernel-version option, loading a scenario."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from forklab.api import Kernel
from forklab.cli.scenario import ScenarioError, ScenarioRun, run_scenario
from forklab.kernel.version import PROFILES

# Wide enough that a piped table or call line is not folded at 80 columns.
PIPED_WIDTH = 160


def make_console() -> Console:
    """Colour and the terminal's width on a terminal; plain text, unfolded, when piped."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPED_WIDTH, no_color=True)
    return console


def kernel_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--kernel", "version", type=click.Choice(PROFILES), default=None, help=help_text)


SCENARIO_ARGUMENT = click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def load_scenario(path: Path, version: str | None, on_boot: Callable[[Kernel], None] | None = None) -> ScenarioRun:
    """The scenario run, or its error as one line and exit status 1."""
    try:
        return run_scenario(path, version, on_boot)
    except ScenarioError as err:
        raise click.ClickException(str(err)) from None
