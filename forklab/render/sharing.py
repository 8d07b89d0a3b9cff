"""What a child shares with its parent, read off the model's objects: the same object is shared.

A resource the child holds its own of is "copied" when the kernel duplicates the parent's
(dup_mm, dup_fd, copy_fs_struct, prepare_creds, ...) and "new" when it starts a fresh one
(a namespace, a thread group, a pid); "none" when the child has none at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table

from forklab.api import TaskHandle
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.task import Task

SHARED = "shared"
COPIED = "copied"
NEW = "new"
NONE = "none"


@dataclass(frozen=True)
class Resource:
    label: str
    short: str  # a word for one-line summaries ("mm", "files")
    of: Callable[[Task], object]
    otherwise: str  # what the child has when it does not share the parent's: COPIED or NEW


def _nsproxy(name: str) -> Callable[[Task], object]:
    return lambda t: getattr(t.nsproxy, name) if t.nsproxy is not None else None


RESOURCES = (
    Resource("address space (mm)", "mm", lambda t: t.mm, COPIED),
    Resource("open files (files_struct)", "files", lambda t: t.files, COPIED),
    Resource("root, cwd, umask (fs_struct)", "fs", lambda t: t.fs, COPIED),
    Resource("signal handlers (sighand)", "sighand", lambda t: t.sighand, COPIED),
    Resource("thread group (signal_struct)", "signal", lambda t: t.signal, NEW),
    Resource("credentials (cred)", "cred", lambda t: t.cred, COPIED),
    Resource("namespaces (nsproxy)", "nsproxy", lambda t: t.nsproxy, NEW),
)
DETAILS = (
    Resource("pid (struct pid)", "pid", lambda t: t.thread_pid, NEW),
    Resource("SysV semaphore undo list", "sysvsem", lambda t: t.sysvsem, NEW),
    Resource("cgroups (css_set)", "cgroups", lambda t: t.cgroups, NEW),
    Resource("user namespace", "user_ns", lambda t: t.cred.user_ns, NEW),
    Resource("pid namespace", "pid_ns", task_active_pid_ns, NEW),
    Resource("mount namespace", "mnt_ns", _nsproxy("mnt_ns"), NEW),
    Resource("uts namespace", "uts_ns", _nsproxy("uts_ns"), NEW),
    Resource("ipc namespace", "ipc_ns", _nsproxy("ipc_ns"), NEW),
    Resource("network namespace", "net_ns", _nsproxy("net_ns"), NEW),
    Resource("cgroup namespace", "cgroup_ns", _nsproxy("cgroup_ns"), NEW),
    Resource("time namespace", "time_ns", _nsproxy("time_ns"), NEW),
)
EVERYTHING = RESOURCES + DETAILS


def relation(parent: Task, child: Task, resource: Resource) -> str:
    theirs = resource.of(child)
    if theirs is None:
        return NONE
    return SHARED if resource.of(parent) is theirs else resource.otherwise


def relations(parent: TaskHandle, child: TaskHandle, resources: tuple[Resource, ...] = RESOURCES) -> list[str]:
    """How the child relates to its parent for each resource, now (take it right after the clone)."""
    return [relation(parent.task_struct, child.task_struct, resource) for resource in resources]


def shared_with(parent: Task, child: Task, resources: tuple[Resource, ...] = RESOURCES) -> list[str]:
    """The short names of what the child shares with the parent."""
    return [resource.short for resource in resources if relation(parent, child, resource) == SHARED]


def sharing_table(
    columns: list[tuple[str, list[str]]], resources: tuple[Resource, ...] = RESOURCES, title: str = ""
) -> Table:
    """One column per child (a title and its ``relations``), one row per resource."""
    table = Table(title=title or "What each child shares with its parent, right after it was made")
    table.add_column("resource")
    for heading, _ in columns:
        table.add_column(heading)
    for index, resource in enumerate(resources):
        table.add_row(resource.label, *(styled(values[index]) for _, values in columns))
    return table


STYLES = {SHARED: "bold green", COPIED: "yellow", NEW: "cyan", NONE: "dim"}


def styled(value: str) -> str:
    return f"[{STYLES[value]}]{value}[/]"
