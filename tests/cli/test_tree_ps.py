"""forklab tree, ps and status, through the console script; the tree's structure, in process."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from forklab.cli.scenario import run_scenario
from forklab.diff.campaign import BUILTIN
from forklab.render.tree import process_forest

from .conftest import Forklab, assert_one_line_error

# Nested pid namespaces, a thread, a vfork child asleep-parent, a CLONE_FILES child and a zombie.
SCENARIO = """\
t1 = t0.fork()
t2 = t1.clone(CLONE_NEWPID | CLONE_NEWUTS | SIGCHLD)
t3 = t2.fork()
m = t3.mmap(65536)
t4 = t3.clone(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, stack=m + 65536)
t5 = t2.vfork()
t6 = t0.clone(CLONE_FILES | SIGCHLD)
t7 = t6.fork()
t7.exit(0)
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "ns.forklab"
    path.write_text(SCENARIO)
    return path


def test_the_forest(scenario: Path) -> None:
    run = run_scenario(scenario)
    forest = process_forest(run.kernel, run.names)
    assert [p.leader.comm for p in forest] == ["init", "kthreadd"]
    (sandbox,) = forest[0].children
    assert sandbox.leader.name == "t0" and sandbox.new_namespaces == ["user", "pid", "mnt", "uts", "ipc"]
    t1, t6 = sandbox.children
    (t2,) = t1.children
    assert t2.new_namespaces == ["pid", "uts"] and t2.pid_ns_level == 2 and t2.leader.state == "D"
    t3, t5 = t2.children
    assert [t.name for t in t3.threads] == ["t4"] and t3.leader.nspid[1:] == (4, 2)
    assert t5.shares == ["mm"] and t5.new_namespaces == []
    assert t6.shares == ["files"] and t6.children[0].leader.state == "Z"


def test_tree_in_the_terminal(forklab: Forklab, scenario: Path) -> None:
    result = forklab("tree", str(scenario))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "new namespaces: pid, uts (pid level 2)" in out
    assert "[2 threads] (2 in its pid namespace) t3" in out and "threads: init 8 R t4" in out
    assert "t5 shares mm with its parent" in out and "t6 shares files with its parent" in out
    assert "\x1b[" not in out


def test_tree_of_the_demo_by_default(forklab: Forklab) -> None:
    out = forklab("tree").stdout
    assert "sh 3 R [2 threads]" in out and "threads: sh 5 R" in out


def test_tree_as_svg_and_png(forklab: Forklab, scenario: Path, tmp_path: Path) -> None:
    pytest.importorskip("pygraphviz")
    svg, png = tmp_path / "tree.svg", tmp_path / "tree.png"
    result = forklab("tree", str(scenario), "--svg", str(svg), "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert f"wrote {svg}" in result.stdout and f"wrote {png}" in result.stdout
    text = " ".join(element.text or "" for element in ET.parse(svg).iter())
    for label in ("init 4", "init 6", "init 8", "kthreadd 2", "NSpid 6 3 1", "shares mm", "thread group 7"):
        assert label in text, label
    assert "new namespaces: pid, uts (pid level 2)" in text
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_ps(forklab: Forklab, scenario: Path) -> None:
    result = forklab("ps", "--scenario", str(scenario))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["2"][4] == "[kthreadd]"
    assert rows["6"][1:6] == ["5", "6", "D", "init", "6"] and rows["6"][6:] == ["3", "1", "t2"]
    assert rows["7"][3] == "Rl" and rows["8"][1:3] == ["6", "7"]  # a thread: its process's parent, its tgid
    assert rows["11"][3] == "Z"


def test_ps_of_the_demo(forklab: Forklab) -> None:
    result = forklab("ps", "--kernel", "6.6")
    assert "tasks of the Linux 6.6 model" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert ["3", "1", "3", "Rl", "sh", "3"] in rows and ["5", "1", "3", "Rl", "sh", "5"] in rows


def test_status(forklab: Forklab, scenario: Path) -> None:
    result = forklab("status", "t2", "--scenario", str(scenario))
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines())
    assert fields["Pid"] == "6" and fields["NSpid"] == "6\t3\t1" and fields["State"] == "D (disk sleep)"
    assert forklab("status", "3").stdout.startswith("Name:\tsh\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "99"), "no task has pid 99"),
        (("status", "t1", "--scenario", str(BUILTIN / "04-threads.forklab")), "t1 has been reaped"),
        (("status", "t9"), "'t9' is neither a pid nor a task name of the scenario"),
        (("ps", "--scenario", "/nonexistent.forklab"), "does not exist"),
        (("tree", "--kernel", "9.9"), "Invalid value for '--kernel'"),
    ],
)
def test_usage_errors(forklab: Forklab, args: tuple[str, ...], message: str) -> None:
    assert_one_line_error(forklab(*args), 2, message)


def test_a_broken_scenario(forklab: Forklab, tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import forklab\nk = forklab.boot()\nk.task(1).frobnicate()\n")
    assert_one_line_error(forklab("tree", str(path)), 1, f"{path}:3: AttributeError: 'TaskHandle' object has no")


@pytest.mark.parametrize("command", ["run", "explain", "tree", "ps", "status", "demo"])
def test_help_has_an_example(forklab: Forklab, command: str) -> None:
    result = forklab(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout and f"forklab {command}" in result.stdout
