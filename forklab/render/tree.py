"""The process tree, as rich renders it in a terminal (or plain text when piped)."""

from __future__ import annotations

from rich.tree import Tree

from forklab.api import Kernel, TaskHandle


def label(task: TaskHandle) -> str:
    status = task.status()
    threads = int(status.get("Threads", "1"))
    extra = f" [{threads} threads]" if threads > 1 else ""
    nspid = status.get("NSpid", "").split("\t")
    inner = f" (pid {nspid[-1]} in its namespace)" if len(nspid) > 1 else ""
    return f"{task.comm} [bold]{task.pid}[/bold] {task.state}{extra}{inner}"


def process_tree(k: Kernel) -> Tree:
    """Thread-group leaders under their real parents, rooted at swapper (pid 0)."""
    leaders = {t.pid: t for t in k.tasks() if t.task_struct.exit_signal >= 0}
    children: dict[int, list[TaskHandle]] = {}
    for task in leaders.values():
        parent = task.task_struct.real_parent
        children.setdefault(parent.pid if parent is not None else 0, []).append(task)
    root = Tree("swapper/0 [bold]0[/bold]")

    def grow(node: Tree, pid: int) -> None:
        for child in sorted(children.get(pid, []), key=lambda t: t.pid):
            if child.pid == pid:
                continue
            grow(node.add(label(child)), child.pid)

    grow(root, 0)
    return root
