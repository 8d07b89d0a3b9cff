"""The process tree through Graphviz: a box per task, an arrow from parent to child, a frame
around each thread group and each step into new namespaces, dashed lines for what is shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forklab.render.tree import ROOT_LABEL, Node, Process, namespace_label

FORMATS = ("svg", "png")
NAMESPACE_COLOUR = "magenta4"
SHARED_COLOUR = "darkgreen"


class GraphvizMissing(RuntimeError):
    """pygraphviz (with the Graphviz it bundles) is not installed."""


def task_id(item: Node) -> str:
    return f"task{item.pid}"


def node_label(item: Node) -> str:
    lines = [f"{item.comm} {item.pid}", f"state {item.state}"]
    if len(item.nspid) > 1:
        lines.append("NSpid " + " ".join(map(str, item.nspid)))
    if item.name:
        lines.append(item.name)
    return "\n".join(lines)


def draw(forest: list[Process], path: Path, fmt: str) -> None:
    """Lay the forest out with dot and write it to ``path`` as ``fmt`` (svg or png)."""
    try:
        import pygraphviz
    except ImportError:
        raise GraphvizMissing("drawing needs pygraphviz: python3 -m pip install 'pygraphviz>=2.0'") from None
    graph = pygraphviz.AGraph(directed=True, strict=False, rankdir="TB", label="process tree", fontname="Helvetica")
    graph.node_attr.update(shape="box", style="rounded", fontname="Helvetica", fontsize="11")
    graph.edge_attr.update(arrowsize="0.7", fontname="Helvetica", fontsize="10")
    graph.add_node("task0", label=ROOT_LABEL, style="rounded,dashed")
    for process in forest:
        add_process(graph, graph, process, "task0")
    graph.layout(prog="dot")
    graph.draw(str(path), format=fmt)


def add_process(graph: Any, frame: Any, process: Process, parent_id: str) -> None:
    """The process's boxes inside ``frame`` (a new one for new namespaces), then its children."""
    leader = process.leader
    if process.new_namespaces:
        frame = frame.add_subgraph(name=f"cluster_ns{leader.pid}", label=namespace_label(process),
                                   color=NAMESPACE_COLOUR, fontcolor=NAMESPACE_COLOUR, style="dashed")  # fmt: skip
    group = frame
    if process.threads:
        group = frame.add_subgraph(name=f"cluster_tg{leader.pid}", label=f"thread group {leader.pid}",
                                   style="filled", fillcolor="grey95", color="grey60", fontcolor="grey30")  # fmt: skip
    group.add_node(task_id(leader), label=node_label(leader))
    for thread in process.threads:
        group.add_node(task_id(thread), label=node_label(thread), style="rounded,dotted")
        graph.add_edge(task_id(leader), task_id(thread), style="invis")
    graph.add_edge(parent_id, task_id(leader))
    if process.shares:
        graph.add_edge(task_id(leader), parent_id, style="dashed", color=SHARED_COLOUR, fontcolor=SHARED_COLOUR,
                       label="shares " + ", ".join(process.shares), constraint="false", dir="both")  # fmt: skip
    for child in process.children:
        add_process(graph, frame, child, task_id(leader))
