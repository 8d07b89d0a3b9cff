"""The function tracer's records and the tracepoint events as Chrome trace-event JSON, which
Perfetto (ui.perfetto.dev) and chrome://tracing open: a B/E slice per function call, an instant
per tracepoint, on a track per thread (pid = tgid, tid = pid)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forklab.kernel.ftrace import ENTRY, FuncRecord
from forklab.kernel.trace import TraceBuffer, TraceEvent
from forklab.render.ftrace import interleave
from forklab.uapi import errno as E


def microseconds(ns: int) -> float:
    return ns / 1000


def chrome_trace(records: Sequence[FuncRecord], buffer: TraceBuffer) -> dict[str, Any]:
    """The JSON object: ``traceEvents`` (metadata naming each process and thread first)."""
    tgid_of = {record.pid: record.tgid for record in records}
    names: dict[tuple[int, int], str] = {}
    events: list[dict[str, Any]] = []
    for item in interleave(records, buffer):
        if isinstance(item, TraceEvent):
            tgid = tgid_of.get(item.pid, item.pid)
            names.setdefault((tgid, item.pid), item.comm)
            events.append(tracepoint_event(item, tgid))
        else:
            names.setdefault((item.tgid, item.pid), item.comm)
            events.append(function_event(item))
    metadata: list[dict[str, Any]] = []
    for (tgid, pid), comm in sorted(names.items()):
        if tgid == pid:
            metadata.append({"ph": "M", "name": "process_name", "pid": tgid, "tid": pid, "args": {"name": comm}})
        metadata.append({"ph": "M", "name": "thread_name", "pid": tgid, "tid": pid, "args": {"name": f"{comm}-{pid}"}})
    return {"traceEvents": metadata + events, "displayTimeUnit": "ns"}


def function_event(record: FuncRecord) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": record.name,
        "cat": "function",
        "ph": "B" if record.kind == ENTRY else "E",
        "ts": microseconds(record.ts),
        "pid": record.tgid,
        "tid": record.pid,
    }
    if record.kind == ENTRY:
        event["args"] = {"cpu": record.cpu}
    elif record.errno:
        event["args"] = {"error": f"-{E.name(record.errno)}"}
    return event


def tracepoint_event(event: TraceEvent, tgid: int) -> dict[str, Any]:
    return {
        "name": event.name,
        "cat": "tracepoint",
        "ph": "i",
        "s": "t",
        "ts": microseconds(event.ts),
        "pid": tgid,
        "tid": event.pid,
        "args": {"cpu": event.cpu, **{key: str(value) for key, value in event.fields}},
    }
