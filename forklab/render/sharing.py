"""What a child shares with its parent: one row per resource, "shared" or "copied" or "new"."""

from __future__ import annotations

from rich.table import Table

from forklab.api import TaskHandle

RESOURCES = (
    ("address space (mm)", "mm"),
    ("open files (files_struct)", "files"),
    ("root, cwd, umask (fs_struct)", "fs"),
    ("signal handlers (sighand)", "sighand"),
    ("thread group (signal_struct)", "signal"),
    ("credentials (cred)", "cred"),
    ("namespaces (nsproxy)", "nsproxy"),
)


def relation(parent: TaskHandle, child: TaskHandle, field: str) -> str:
    mine = getattr(parent.task_struct, field)
    theirs = getattr(child.task_struct, field)
    if theirs is None:
        return "none"
    return "shared" if mine is theirs else "copied"


def relations(parent: TaskHandle, child: TaskHandle) -> list[str]:
    """How the child relates to its parent for each resource, now (take it right after the clone)."""
    return [relation(parent, child, field) for _, field in RESOURCES]


def sharing_table(columns: list[tuple[str, list[str]]]) -> Table:
    """One column per child (a title and its ``relations``), one row per resource."""
    table = Table(title="What each child shares with its parent, right after it was made")
    table.add_column("resource")
    for title, _ in columns:
        table.add_column(title)
    for index, (name, _) in enumerate(RESOURCES):
        table.add_row(name, *(values[index] for _, values in columns))
    return table
