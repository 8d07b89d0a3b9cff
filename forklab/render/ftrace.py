"""The function tracer's records as tracefs prints them: the ``function_graph`` tracer's
nested calls, and the ``function`` tracer's lines interleaved with the tracepoint events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from forklab.kernel.ftrace import ENTRY, RETURN, FuncRecord
from forklab.kernel.trace import DEFAULT_FLAGS, TRACE_HEADER, TraceBuffer, TraceEvent, line_context

GRAPH_HEADER = """\
# tracer: function_graph
#
# CPU  DURATION                  FUNCTION CALLS
# |     |   |                     |   |   |   |
"""
INDENT = 2  # TRACE_GRAPH_INDENT
# The overhead marks of the duration column: a duration above the bound gets the mark.
MARKS = ((1_000_000_000, "$"), (100_000_000, "@"), (10_000_000, "*"), (1_000_000, "#"), (100_000, "!"), (10_000, "+"))
NO_DURATION = " " * 14 + "|  "
SWITCH_RULE = " " + "-" * 42


def graph_duration(ns: int) -> str:
    """The duration column: overhead mark, microseconds with up to 7 digits, padded to width."""
    mark = next((sym for bound, sym in MARKS if ns > bound), " ")
    usecs, rem = divmod(ns, 1000)
    text = str(usecs)
    if len(text) < 7:
        text += "." + f"{rem:03d}"[: min(4, 8 - len(text)) - 1]
    return f"{mark} {text} us {' ' * (8 - len(text))}|  "


def graph_proc(comm: str, pid: int) -> str:
    """A task as the context-switch lines show it: comm-pid centred in 14 columns."""
    text = f"{comm[:7]}-{pid}"
    spaces = max(0, 14 - len(text))
    return " " * (spaces // 2) + text + " " * (spaces - spaces // 2)


def subtrees(records: Sequence[FuncRecord], graph_function: str | None) -> Iterator[tuple[FuncRecord, int]]:
    """Each record with its depth; with ``graph_function``, only the calls made within that
    function, counted from it (what set_graph_function does)."""
    if graph_function is None:
        yield from ((record, record.depth) for record in records)
        return
    root: int | None = None
    for record in records:
        if root is None and record.kind == ENTRY and record.name == graph_function:
            root = record.depth
        if root is not None:
            yield record, record.depth - root
            if record.kind == RETURN and record.depth == root:
                root = None


def function_graph(records: Sequence[FuncRecord], cpus: int, graph_function: str | None = None) -> str:
    """The records as /sys/kernel/tracing/trace prints them under the function_graph tracer."""
    cpu_width = len(str(cpus - 1))
    last_pid: dict[int, tuple[str, int]] = {}
    lines = [GRAPH_HEADER]
    rows = list(subtrees(records, graph_function))
    index = 0
    while index < len(rows):
        record, depth = rows[index]
        cpu = f" {record.cpu:>{cpu_width}}) "
        previous = last_pid.get(record.cpu)
        if previous is not None and previous[1] != record.pid:
            switch = f"{cpu}{graph_proc(*previous)} => {graph_proc(record.comm, record.pid)}"
            lines.append(f"{SWITCH_RULE}\n{switch}\n{SWITCH_RULE}\n\n")
        last_pid[record.cpu] = (record.comm, record.pid)
        indent = " " * (depth * INDENT)
        following = rows[index + 1][0] if index + 1 < len(rows) else None
        if record.kind == RETURN:
            lines.append(f"{cpu}{graph_duration(record.ts - record.calltime)}{indent}}}\n")
        elif following is not None and is_return_of(following, record):
            lines.append(f"{cpu}{graph_duration(following.ts - record.ts)}{indent}{record.name}();\n")
            index += 1
        else:
            lines.append(f"{cpu}{NO_DURATION}{indent}{record.name}() {{\n")
        index += 1
    return "".join(lines)


def is_return_of(record: FuncRecord, entry: FuncRecord) -> bool:
    return record.kind == RETURN and record.pid == entry.pid and record.name == entry.name


def interleave(records: Iterable[FuncRecord], buffer: TraceBuffer) -> Iterator[FuncRecord | TraceEvent]:
    """Function records and tracepoint events in the order they happened."""
    events = list(buffer.events)
    first = buffer.written - len(events)  # the number of the oldest event still in the ring
    position = 0
    for record in records:
        while position < len(events) and first + position < record.events_before:
            yield events[position]
            position += 1
        yield record
    yield from events[position:]


def function_trace_text(records: Iterable[FuncRecord], buffer: TraceBuffer, cpus: int) -> str:
    """The function tracer's file with the tracepoints enabled: a line per function entered
    (``function <-caller``) among the events' lines."""
    lines = []
    for item in interleave(records, buffer):
        if isinstance(item, TraceEvent):
            lines.append(item.line())
        elif item.kind == ENTRY:
            caller = f" <-{item.parent}" if item.parent else ""
            lines.append(f"{line_context(item.comm, item.pid, item.cpu, DEFAULT_FLAGS, item.ts)} {item.name}{caller}")
    header = TRACE_HEADER.format(tracer="function", entries=len(lines), written=len(lines), cpus=cpus)
    return header + "".join(line + "\n" for line in lines)
