"""ps and /proc/<pid>/status for the model, read through the tasks' own status()."""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape
from rich.table import Table

from forklab.api import Kernel, TaskHandle
from forklab.kernel.task import PF_KTHREAD

COLUMNS = ("PID", "PPID", "TGID", "STAT", "COMMAND", "NSPID")


def stat(fields: Mapping[str, str]) -> str:
    """ps's STAT: the state letter, then ``s`` in a session leader's process and ``l`` in a
    multi-threaded one (every thread's row, as ps -L shows them)."""
    text = fields["State"].split()[0]
    if fields.get("NSsid", "").split()[:1] == [fields["Tgid"]]:
        text += "s"
    if int(fields.get("Threads", "1")) > 1:
        text += "l"
    return text


def command(task: TaskHandle) -> str:
    """Kernel threads in brackets, as ps shows them."""
    return f"[{task.comm}]" if task.task_struct.flags & PF_KTHREAD else task.comm


def ps_rows(k: Kernel, names: Mapping[str, TaskHandle] | None = None) -> list[tuple[str, ...]]:
    """One row per task, threads and zombies included (ps -eL), pids as the initial namespace sees them."""
    named = {handle.task_struct: name for name, handle in (names or {}).items()}
    rows: list[tuple[str, ...]] = []
    for task in k.tasks():
        fields = task.status()
        row: tuple[str, ...] = (fields["Pid"], fields["PPid"], fields["Tgid"], stat(fields), command(task),
               " ".join(fields["NSpid"].split()))  # fmt: skip
        if names:
            row += (named.get(task.task_struct, ""),)
        rows.append(row)
    return rows


def ps_table(k: Kernel, names: Mapping[str, TaskHandle] | None = None) -> Table:
    table = Table(title=f"tasks of the Linux {k.version} model", title_justify="left", box=None, header_style="bold")
    for heading in (*COLUMNS, "NAME") if names else COLUMNS:
        table.add_column(heading, justify="right" if heading in ("PID", "TGID", "PPID") else "left")
    for row in ps_rows(k, names):
        table.add_row(*(escape(cell) for cell in row))
    return table


def status_text(task: TaskHandle) -> str:
    """/proc/<pid>/status as the file reads, for a reader in the initial namespaces."""
    return "".join(f"{name}:\t{value}\n" for name, value in task.status().items())
