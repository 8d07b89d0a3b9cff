"""forklab: the command line.

forklab demo        the process tree from swapper to a shell, and what fork does
forklab run         a scenario's calls and their results
forklab explain     what the kernel does with a clone flag word, and why
forklab tree        the process tree a scenario leaves (text, SVG, PNG)
forklab ps          its tasks; forklab status PID: one task's /proc/PID/status
forklab diff        the same system calls on the model and on this machine's kernel, compared
forklab trace       a scenario's path through the kernel's functions, as ftrace shows it
forklab step        a scenario stopped in the kernel's functions, as gdb stops it
"""

from __future__ import annotations

import sys
from typing import Any

import click

from forklab import __version__
from forklab.cli.bench import bench
from forklab.cli.common import make_console
from forklab.cli.demo import run_demo
from forklab.cli.diff import diff
from forklab.cli.explain import explain
from forklab.cli.run import run
from forklab.cli.show import ps, status, tree
from forklab.cli.step import step
from forklab.cli.trace import trace
from forklab.kernel.version import DEFAULT_VERSION, PROFILES


class OneLineErrors(click.Group):
    """Every error a user can cause is one line on stderr: usage errors exit 2, failures 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            status = super().main(*args, **kwargs)
        except click.UsageError as err:
            message = err.format_message()
            if "\n" in message:  # no arguments at all: click's answer is the help text
                click.echo(message, err=True)
            else:
                where = err.ctx.command_path if err.ctx is not None else "forklab"
                click.echo(f"{where}: {message} (see {where} --help)", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            click.echo(f"forklab: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("forklab: aborted", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
    run_demo(make_console(), kernel_version)


main.add_command(diff)
main.add_command(explain)
main.add_command(run)
main.add_command(tree)
main.add_command(ps)
main.add_command(status)
main.add_command(trace)
main.add_command(step)
main.add_command(bench)

if __name__ == "__main__":
    main()
