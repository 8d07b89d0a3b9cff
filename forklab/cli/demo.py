"""The demo: boot, the login chain, and the ways a shell makes tasks, told step by step.

``build_demo`` makes the machine and the story; ``run_demo`` shows them. The machine is also
what ``forklab tree``, ``ps`` and ``status`` show when no scenario is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

import forklab
from forklab import CLONE_SIGHAND, PTHREAD_FLAGS, SyscallError
from forklab.kernel import ftrace
from forklab.render.ftrace import function_graph
from forklab.render.sharing import relations, sharing_table
from forklab.render.tree import process_tree
from forklab.uapi.flags import decode_clone_flags


@dataclass
class Demo:
    kernel: forklab.Kernel
    story: list[tuple[str, str]] = field(default_factory=list)  # (what happened, how it went), in order
    sharing: list[tuple[str, list[str]]] = field(default_factory=list)  # each child's relations, as it was made
    fork_graph: str = ""  # the shell's fork as the function_graph tracer prints it

    def tell(self, what: str, how: str) -> None:
        self.story.append((what, how))


def spawn(demo: Demo, parent: forklab.TaskHandle, path: str) -> tuple[forklab.TaskHandle, list[str]]:
    """fork, then exec ``path`` in the child: how every program is started. Also what the child
    shared with its parent before the exec."""
    child = parent.task(parent.fork())
    demo.tell(f"{parent.comm} {parent.pid}: fork()", f"child {child.pid}, a copy of {parent.comm}")
    shared = relations(parent, child)
    execs(demo, child, path)
    return child, shared


def execs(demo: Demo, task: forklab.TaskHandle, path: str) -> None:
    before = task.comm
    task.execve(path, [path.rsplit("/", 1)[-1]])
    demo.tell(f"{before} {task.pid}: execve({path})", f"now {task.comm}, still pid {task.pid}")


def login_chain(demo: Demo) -> forklab.TaskHandle:
    """pid 0 to a login shell: init forks getty, which execs login, which execs the shell."""
    k = demo.kernel
    init, kthreadd = k.task(1), k.task(2)
    demo.tell("swapper 0: rest_init()", f"kernel_init becomes pid {init.pid}, kthreadd pid {kthreadd.pid}")
    demo.tell(f"kernel_init {init.pid}: execve(/sbin/init)", f"now {init.comm}: user space begins")
    getty, _ = spawn(demo, init, "/sbin/getty")
    execs(demo, getty, "/bin/login")
    execs(demo, getty, "/bin/sh")
    return getty


def in_the_shell(demo: Demo, shell: forklab.TaskHandle) -> None:
    """A fork+exec, a thread as pthread_create makes it, a vfork+exec, and a refused clone."""
    k = demo.kernel
    with ftrace.tracing(k.machine) as tracer:
        demo.sharing.append(("fork", spawn(demo, shell, "/bin/ls")[1]))
    demo.fork_graph = function_graph(tracer.records, k.machine.nr_cpu_ids, graph_function="copy_process")
    stack = shell.mmap(1 << 16)
    tid_word = shell.mmap(4096)
    tid = shell.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=tid_word, child_tid=tid_word, tls=stack)
    demo.tell(
        f"sh {shell.pid}: pthread_create: clone({PTHREAD_FLAGS:#x})",
        f"thread {tid} of process {shell.pid}; the flags: {decode_clone_flags(PTHREAD_FLAGS)}",
    )
    demo.sharing.append(("pthread_create", relations(shell, shell.task(tid))))
    child = shell.task(shell.vfork())
    demo.tell(f"sh {shell.pid}: vfork()", f"child {child.pid}; sh sleeps in state {shell.state} until it execs")
    demo.sharing.append(("vfork", relations(shell, child)))
    execs(demo, child, "/bin/ls")
    demo.tell(f"sh {shell.pid}: vfork() returns", f"sh is back in state {shell.state}")
    try:
        shell.clone(CLONE_SIGHAND)
    except SyscallError as err:
        demo.tell(f"sh {shell.pid}: clone(CLONE_SIGHAND)", f"{err.errno_name}: {err.reason}")


def build_demo(version: str) -> Demo:
    """The demo's machine, the trace holding what the shell did."""
    demo = Demo(forklab.boot(version=version))
    shell = login_chain(demo)
    demo.kernel.clear_trace()
    in_the_shell(demo, shell)
    return demo


def story_table(demo: Demo) -> Table:
    table = Table(title="From pid 0 to a shell, and what the shell does", show_edge=False, pad_edge=False)
    table.add_column("call", no_wrap=True)
    table.add_column("what the kernel did", overflow="fold")
    for what, how in demo.story:
        table.add_row(what, how, style="red" if "EINVAL" in how else "")
    return table


def run_demo(console: Console, version: str) -> None:
    demo = build_demo(version)
    k = demo.kernel
    console.print(Panel.fit(f"forklab: Linux {k.version} booted: swapper (0), init (1), kthreadd (2)"))
    console.print(story_table(demo))
    console.print(process_tree(k))
    console.print(sharing_table(demo.sharing))
    console.rule("the shell's fork in the kernel, as function_graph prints it")
    console.print(demo.fork_graph.rstrip(), soft_wrap=True, markup=False, highlight=False)
    console.rule("tracepoints of the shell's calls, as /sys/kernel/tracing/trace prints them")
    console.print(k.trace_text().rstrip(), soft_wrap=True, markup=False, highlight=False)
    k.check()
