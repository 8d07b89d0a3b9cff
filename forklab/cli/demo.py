"""The demo: boot, the login chain, and the ways a shell makes tasks."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

import forklab
from forklab import (
    CLONE_SIGHAND,
    PTHREAD_FLAGS,
    SyscallError,
)
from forklab.kernel import ftrace
from forklab.render.ftrace import function_graph
from forklab.render.sharing import relations, sharing_table
from forklab.render.tree import process_tree


def spawn(parent: forklab.TaskHandle, path: str) -> tuple[forklab.TaskHandle, list[str]]:
    """fork, then exec ``path`` in the child: how every program is started."""
    child = parent.task(parent.fork())
    shared = relations(parent, child)
    child.execve(path, [path.rsplit("/", 1)[-1]])
    return child, shared


def run_demo(console: Console, version: str) -> None:
    k = forklab.boot(version=version)
    init = k.task(1)
    console.print(Panel.fit(f"forklab: Linux {k.version} booted: swapper (0), init (1), kthreadd (2)"))

    # The login chain: getty is forked by init, execs login, which execs the shell.
    getty, _ = spawn(init, "/sbin/getty")
    getty.execve("/bin/login", ["login"])
    shell = getty
    shell.execve("/bin/sh", ["-sh"])
    k.clear_trace()

    # In the shell: fork+exec of ls, a thread, a vfork+exec, and a clone the kernel refuses.
    with ftrace.tracing(k.machine) as tracer:
        _, forked = spawn(shell, "/bin/ls")
    fork_graph = function_graph(tracer.records, k.machine.nr_cpu_ids, graph_function="copy_process")
    stack = shell.mmap(1 << 16)
    tid_word = shell.mmap(4096)
    thread = shell.task(
        shell.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=tid_word, child_tid=tid_word, tls=stack)
    )
    threaded = relations(shell, thread)
    vforked = shell.task(shell.vfork())
    vfork_shared = relations(shell, vforked)
    console.print(f"vfork: the shell sleeps in state [bold]{shell.state}[/bold] until its child execs")
    vforked.execve("/bin/ls", ["ls"])
    console.print(f"the child exec'd: the shell is back in state [bold]{shell.state}[/bold]")
    try:
        shell.clone(CLONE_SIGHAND)
    except SyscallError as err:
        console.print(f"clone(CLONE_SIGHAND) -> [red]{err.errno_name}[/red]: {err.reason}")

    console.print(process_tree(k))
    console.print(sharing_table([("fork", forked), ("pthread_create", threaded), ("vfork", vfork_shared)]))
    console.rule("the shell's fork in the kernel, as function_graph prints it")
    console.print(fork_graph.rstrip(), soft_wrap=True, markup=False, highlight=False)
    console.rule("tracepoints, as /sys/kernel/tracing/trace prints them")
    console.print(k.trace_text().rstrip(), soft_wrap=True, markup=False, highlight=False)
    k.check()
