"""forklab: the command line.

forklab demo        the process tree from swapper to a shell, and what fork does
forklab diff        the same system calls on the model and on this machine's kernel, compared
"""

from __future__ import annotations

import click
from rich.console import Console

from forklab import __version__
from forklab.cli.bench import bench
from forklab.cli.demo import run_demo
from forklab.cli.diff import diff
from forklab.kernel.version import DEFAULT_VERSION, PROFILES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forklab")
def main() -> None:
    """forklab: Linux process creation, executable in Python.

    A model of how Linux creates, runs and retires processes, checked against the
    machine's own kernel.
    """


@main.command()
@click.option(
    "--kernel",
    "kernel_version",
    type=click.Choice(PROFILES),
    default=DEFAULT_VERSION,
    show_default=True,
    help="Which kernel version's behaviour to model.",
)
def demo(kernel_version: str) -> None:
    """Boot the model and walk the classic chain: pid 0, init, getty, login, a shell;
    then in the shell a fork+exec, a thread, a vfork and a refused clone.

    Example: forklab demo --kernel 6.18
    """
    run_demo(Console(), kernel_version)


main.add_command(diff)
main.add_command(bench)

if __name__ == "__main__":
    main()
