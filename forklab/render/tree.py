"""The process tree: processes under their real parents, threads grouped with their process,
a box for each step into new namespaces, and what a child shares with its parent.

``process_forest`` reads the model once into plain nodes; ``process_tree`` draws them with
rich (plain text when piped), ``forklab.render.graph`` with Graphviz.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.markup import escape
from rich.tree import Tree

from forklab.api import Kernel, TaskHandle
from forklab.kernel.pid import pid_nr_ns
from forklab.kernel.pid_namespace import PidNamespace, task_active_pid_ns
from forklab.kernel.task import Task, task_state_letter, thread_group_leader
from forklab.render.sharing import DETAILS, RESOURCES, SHARED, relation, shared_with

# What a process may share with its parent beyond the namespaces (vfork, CLONE_VM, CLONE_FILES, ...).
SHAREABLE = RESOURCES[:4]  # mm, files, fs, sighand
NAMESPACES = tuple(r for r in DETAILS if r.short.endswith("_ns"))
ROOT_LABEL = "swapper/0 0"


@dataclass
class Node:
    """One task as the tree shows it."""

    pid: int  # in the initial pid namespace
    nspid: tuple[int, ...]  # from the initial namespace down to its own
    comm: str
    state: str
    name: str = ""  # the scenario's name for it (t1), if any


@dataclass
class Process:
    """A thread group: its leader, its other threads, its child processes."""

    leader: Node
    threads: list[Node] = field(default_factory=list)
    children: list[Process] = field(default_factory=list)
    new_namespaces: list[str] = field(default_factory=list)  # kinds of its namespaces not its parent's (pid, user)
    shares: list[str] = field(default_factory=list)  # what it shares with its parent (mm, files, ...)
    pid_ns_level: int = 0


def node(task: Task, names: Mapping[Task, str]) -> Node:
    nspid = tuple(pid_nr_ns(task.thread_pid, ns) for ns in pid_namespaces(task))
    return Node(task.pid, nspid, task.comm, task_state_letter(task), names.get(task, ""))


def pid_namespaces(task: Task) -> list[PidNamespace]:
    """The task's pid namespace and its ancestors, outermost first."""
    chain: list[PidNamespace] = []
    ns = task_active_pid_ns(task) if task.thread_pid is not None else None
    while ns is not None:
        chain.append(ns)
        ns = ns.parent
    return chain[::-1]


def process_forest(k: Kernel, names: Mapping[str, TaskHandle] | None = None) -> list[Process]:
    """The processes whose parent is swapper (pid 0), each with its descendants."""
    by_task = {handle.task_struct: name for name, handle in (names or {}).items()}
    tasks = [handle.task_struct for handle in k.tasks()]
    processes = {t: Process(node(t, by_task)) for t in tasks if thread_group_leader(t)}
    for task in tasks:
        if not thread_group_leader(task) and task.group_leader in processes:
            processes[task.group_leader].threads.append(node(task, by_task))
    roots = []
    for leader, process in processes.items():
        parent = leader.real_parent.group_leader if leader.real_parent is not None else None
        if parent is None or parent not in processes or parent is leader:
            roots.append(process)
            continue
        processes[parent].children.append(process)
        process.shares = shared_with(parent, leader, SHAREABLE)
        process.new_namespaces = [
            r.short.removesuffix("_ns")
            for r in NAMESPACES
            if relation(parent, leader, r) != SHARED and r.of(leader) is not None
        ]
    for process in processes.values():
        process.pid_ns_level = len(process.leader.nspid) - 1
        process.children.sort(key=lambda p: p.leader.pid)
    return sorted(roots, key=lambda p: p.leader.pid)


def label(item: Node, threads: int = 1) -> str:
    """``sh 3 R``; ``sh 5 R (1 in its pid namespace)``; with rich markup."""
    text = f"{escape(item.comm)} [bold]{item.pid}[/bold] {item.state}"
    if threads > 1:
        text += f" \\[{threads} threads]"
    if len(item.nspid) > 1:
        text += f" ({item.nspid[-1]} in its pid namespace)"
    if item.name:
        text += f" [cyan]{escape(item.name)}[/cyan]"
    return text


def namespace_label(process: Process) -> str:
    """``new namespaces: user, pid (level 1)``, without markup."""
    text = "new namespaces: " + ", ".join(process.new_namespaces)
    return text + (f" (pid level {process.pid_ns_level})" if "pid" in process.new_namespaces else "")


def process_tree(k: Kernel, names: Mapping[str, TaskHandle] | None = None) -> Tree:
    """The forest under swapper, as a rich Tree."""
    root = Tree(ROOT_LABEL)
    for process in process_forest(k, names):
        grow(root, process)
    return root


def grow(parent: Tree, process: Process) -> None:
    if process.new_namespaces:
        parent = parent.add(f"[magenta]{namespace_label(process)}[/magenta]", guide_style="magenta")
    text = label(process.leader, 1 + len(process.threads))
    if process.shares:
        text += f" [green]shares {', '.join(process.shares)} with its parent[/green]"
    branch = parent.add(text)
    if process.threads:
        threads = ", ".join(
            escape(f"{t.comm} {t.pid} {t.state}" + (f" {t.name}" if t.name else "")) for t in process.threads
        )
        branch.add(f"[dim]threads: {threads}[/dim]")
    for child in process.children:
        grow(branch, child)
