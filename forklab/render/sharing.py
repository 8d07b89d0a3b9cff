"""What a child shares with its parent: one row per resource, "shared" or "copied" or "new"."""

from __future__ import annotations

from rich.table import Table

from forklab.api import TaskHandle
from forklab.kernel.task import Task

RESOURCES = (
    ("address space (mm)", "mm"),
    ("open files (files_struct)", "files"),
    ("root, cwd, umask (fs_struct)", "fs"),
    ("signal handlers (sighand)", "sighand"),
    ("thread group (signal_struct)", "signal"),
    ("credentials (cred)", "cred"),
    ("namespaces (nsproxy)", "nsproxy"),
)


def relation(parent: Task, child: Task, field: str) -> str:
    mine = getattr(parent, field)
    theirs = getattr(child, field)
    if theirs is None:
        return "none"
    return "shared" if mine is theirs else "copied"


def task_relations(parent: Task, child: Task) -> list[str]:
    """How the child's task_struct relates to its parent's for each resource, now."""
    return [relation(parent, child, field) for _, field in RESOURCES]


def relations(parent: TaskHandle, child: TaskHandle) -> list[str]:
    """How the child relates to its parent for each resource, now (take it right after the clone)."""
    return task_relations(parent.task_struct, child.task_struct)


def sharing_table(columns: list[tuple[str, list[str]]]) -> Table:
    """One column per child (a title and its ``relations``), one row per resource."""
    table = Table(title="What each child shares with its parent, right after it was made")
    table.add_column("resource")
    for title, _ in columns:
        table.add_column(title)
    for index, (name, _) in enumerate(RESOURCES):
        table.add_row(name, *(values[index] for _, values in columns))
    return table
