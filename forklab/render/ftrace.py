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
    """Each record with its depth; with ``graph_function``, only the calls a task makes within
    that function, counted from it (what set_graph_function does)."""
    if graph_function is None:
        yield from ((record, record.depth) for record in records)
        return
    roots: dict[int, int] = {}  # per task, as the kernel flags the task: the depth of its call
    for record in records:
        root = roots.get(record.pid)
        if root is None and record.kind == ENTRY and record.name == graph_function:
            root = roots[record.pid] = record.depth
        if root is not None:
            yield record, record.depth - root
            if record.kind == RETURN and record.depth == root:
                del roots[record.pid]


def function_graph(records: Sequence[FuncRecord], cpus: int, graph_function: str | None = None) -> str:
    """The records as /sys/kernel/tracing/trace prints them under the function_graph tracer."""
    cpu_width = len(str(cpus - 1))
    last_task: dict[int, tuple[str, int]] = {}  # per CPU
    # Per CPU and depth, the function entered there and not yet returned from (enter_funcs).
    entered: dict[tuple[int, int], str] = {}
    lines = [GRAPH_HEADER]
    rows = list(subtrees(records, graph_function))
    index = 0
    while index < len(rows):
        record, depth = rows[index]
        cpu = f" {record.cpu:>{cpu_width}}) "
        lines.append(context_switch(last_task, record, cpu))
        following = rows[index + 1][0] if index + 1 < len(rows) else None
        leaf = following if record.kind == ENTRY and following is not None and is_return_of(following, record) else None
        lines.append(cpu + graph_call(record, leaf, depth, entered))
        index += 1 if leaf is None else 2
    return "".join(lines)


def context_switch(last_task: dict[int, tuple[str, int]], record: FuncRecord, cpu: str) -> str:
    """The banner the graph prints when another task's records start on a CPU."""
    previous = last_task.get(record.cpu)
    last_task[record.cpu] = (record.comm, record.pid)
    if previous is None or previous[1] == record.pid:
        return ""
    switch = f"{cpu}{graph_proc(*previous)} => {graph_proc(record.comm, record.pid)}"
    return f"{SWITCH_RULE}\n{switch}\n{SWITCH_RULE}\n\n"


def graph_call(
    record: FuncRecord, leaf_return: FuncRecord | None, depth: int, entered: dict[tuple[int, int], str]
) -> str:
    """One line after the CPU column: a leaf call, an entry, or a return."""
    indent = " " * (depth * INDENT)
    if leaf_return is not None:
        return f"{graph_duration(leaf_return.ts - record.ts)}{indent}{record.name}();\n"
    if record.kind == ENTRY:
        entered[record.cpu, depth] = record.name
        return f"{NO_DURATION}{indent}{record.name}() {{\n"
    # A brace whose entry this CPU did not show at that depth (the entry left the ring buffer,
    # or another task's calls came between) names its function, as the kernel's does.
    matched = entered.pop((record.cpu, depth), None) == record.name
    closing = "}" if matched else f"}} /* {record.name} */"
    return f"{graph_duration(record.ts - record.calltime)}{indent}{closing}\n"


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
