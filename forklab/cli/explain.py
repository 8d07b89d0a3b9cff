"""forklab explain: what the kernel does with a clone flag word, found by making the call.

Nothing here knows the rules: a freshly booted model is set up as the caller asked for, the
call is made, and the answer is read off what happened (the errno and the check that
refused, or the child's objects compared with the caller's).
"""

from __future__ import annotations

from dataclasses import dataclass

import click
from rich.console import Console
from rich.table import Table

import forklab
from forklab.api import SyscallError, TaskHandle
from forklab.cli.common import make_console
from forklab.kernel.version import DEFAULT_VERSION, PROFILES
from forklab.render.sharing import EVERYTHING, relations, sharing_table
from forklab.uapi import errno as E
from forklab.uapi.flags import FlagSyntaxError, flag_names, parse_clone_flags
from forklab.uapi.sched import CLONE_NEWPID, CLONE_NEWTIME, CSIGNAL, PTHREAD_FLAGS
from forklab.uapi.signal import SIGCHLD, signal_name

USER_ID = 1000  # the unprivileged caller's uid and gid
AREA = 1 << 16  # the caller's memory for the call's pointers: stack, tid words, pidfd, TLS
NOT_MODELLED = "not modelled"


@dataclass
class Call:
    name: str  # clone or clone3
    flags: int  # for clone3: without the exit signal
    exit_signal: int


def parse_call(text: str, call: str) -> Call:
    """The flag word; for clone3 its low byte's signal (CLONE_NEWTIME apart) is the exit_signal field."""
    word = parse_clone_flags(text)
    if call == "clone":
        return Call(call, word, word & CSIGNAL)
    signal = word & CSIGNAL & ~CLONE_NEWTIME
    return Call(call, word & ~signal, signal)


def make_caller(version: str, as_user: bool, in_new_pidns: bool, thread: bool) -> tuple[TaskHandle, str]:
    """A shell forked from init, then changed into the caller asked for; and words for it."""
    k = forklab.boot(version=version)
    init = k.task(1)
    caller = init.task(init.fork())
    caller.execve("/bin/sh", ["sh"])
    words = []
    if in_new_pidns:
        caller = caller.task(caller.clone(CLONE_NEWPID | SIGCHLD))
        words.append("init of a new pid namespace")
    if as_user:
        caller.setresgid(USER_ID, USER_ID, USER_ID)
        caller.setresuid(USER_ID, USER_ID, USER_ID)
        words.append(f"uid {USER_ID} without capabilities")
    else:
        words.append("root")
    if thread:
        stack = caller.mmap(AREA)
        caller = caller.task(
            caller.clone(PTHREAD_FLAGS, stack=stack + AREA, parent_tid=stack, child_tid=stack, tls=stack)
        )
        words.append("calling from a second thread")
    return caller, f"{caller.comm} ({pids(caller)}), " + ", ".join(words)


def pids(task: TaskHandle) -> str:
    """``pid 5`` or, in a nested pid namespace, ``pid 5, 2 in its namespace``."""
    nested = task.kernel.task(task.pid).status()["NSpid"].split()  # read from the initial namespace
    return f"pid {task.pid}" + (f", {nested[-1]} in its namespace" if len(nested) > 1 else "")


def make_call(caller: TaskHandle, call: Call) -> int:
    """The call with valid pointers for every field it may use, so only the flags decide."""
    area = caller.mmap(AREA)
    parent_tid, child_tid, pidfd, tls = area, area + 8, area + 16, area + 64
    if call.name == "clone":
        return caller.clone(call.flags, stack=area + AREA, parent_tid=parent_tid, child_tid=child_tid, tls=tls)
    return caller.clone3(flags=call.flags, exit_signal=call.exit_signal, stack=area, stack_size=AREA,
                         pidfd=pidfd, child_tid=child_tid, parent_tid=parent_tid, tls=tls)  # fmt: skip


def flag_table(call: Call) -> Table:
    table = Table(title=f"{call.name} flags {call.flags:#x}", show_header=False, box=None)
    for name in flag_names(call.flags, with_signal=call.name == "clone"):
        value = parse_clone_flags(name)
        table.add_row(name, f"exit signal {value}" if value == call.exit_signal else f"{value:#010x}")
    if call.name == "clone3":
        table.add_row("exit_signal", signal_name(call.exit_signal) if call.exit_signal else "0 (none)")
    return table


def show_refusal(console: Console, err: SyscallError) -> None:
    console.print(f"[bold red]refused[/]: {err.errno_name} ({E.strerror(err.errno or 0)})")
    console.print(f"check:   {err.reason}", markup=False)
    if err.unwound_from:
        console.print(f"copy_process unwound from {err.unwound_from}", markup=False)


def show_child(console: Console, caller: TaskHandle, child: TaskHandle) -> None:
    task = child.task_struct
    kind = "a thread of the caller's process" if task.tgid == caller.tgid else "a new process"
    parent = task.real_parent
    console.print(f"[bold green]accepted[/]: the child is pid {child.pid_in(caller)} as the caller sees it, {kind}")
    if parent is not None:
        handle = caller.kernel.task(parent.pid)
        console.print(f"parent:  {parent.comm} ({pids(handle)}); exit signal {exit_signal_name(task.exit_signal)}")
    if caller.state != "R":
        console.print(f"caller:  now in state {caller.state} (vfork: asleep until the child execs or exits)")
    console.print(sharing_table([("the child", relations(caller, child, EVERYTHING))], EVERYTHING,
                                "What the child shares with its caller, copies or gets new"))  # fmt: skip


def exit_signal_name(sig: int) -> str:
    if sig < 0:
        return "none (a thread: its group's leader reports)"
    return signal_name(sig) if sig else "0 (none: only __WALL or __WCLONE waits see it)"


@click.command()
@click.argument("flags")
@click.option("--call", "call_name", type=click.Choice(["clone", "clone3"]), default="clone", show_default=True,
              help="The system call to make.")  # fmt: skip
@click.option("--as-user", is_flag=True, help=f"Call as uid {USER_ID}, without capabilities.")
@click.option("--in-new-pidns", is_flag=True, help="Call as pid 1 of a new pid namespace.")
@click.option("--thread", is_flag=True, help="Call from a second thread of the caller's process.")
@click.option("--kernel", "version", type=click.Choice(PROFILES), default=DEFAULT_VERSION, show_default=True,
              help="The kernel version to ask.")  # fmt: skip
def explain(flags: str, call_name: str, as_user: bool, in_new_pidns: bool, thread: bool, version: str) -> None:
    """Say what the kernel does with a clone flag word: accepted or not (the errno and the exact
    check that refuses it), and what the child shares with its caller, copies or gets new.

    FLAGS is a flag word as strace prints it (CLONE_VM|CLONE_FS|SIGCHLD; CLONE_ may be left
    off) or a number (0x3d0f00). The answer comes from making the call in a freshly booted
    model, as a shell forked from init (or the caller the options ask for).

    Examples:

      forklab explain 'CLONE_SIGHAND'

      forklab explain 'CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|SIGCHLD'

      forklab explain 'CLONE_NEWPID|CLONE_NEWUSER' --call clone3 --as-user
    """
    try:
        call = parse_call(flags, call_name)
    except FlagSyntaxError as err:
        raise click.BadParameter(str(err), param_hint="FLAGS") from None
    caller, who = make_caller(version, as_user, in_new_pidns, thread)
    console = make_console()
    console.print(flag_table(call))
    console.print(f"caller:  {who}, Linux {caller.kernel.version}", markup=False)
    try:
        pid = make_call(caller, call)
    except SyscallError as err:
        if err.reason.startswith(NOT_MODELLED):
            raise click.ClickException(f"the model cannot answer: {err.reason}") from None
        show_refusal(console, err)
        return
    show_child(console, caller, caller.task(pid))
