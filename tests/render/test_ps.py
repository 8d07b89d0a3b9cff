"""ps rows and /proc/<pid>/status text, read from the model."""

from __future__ import annotations

import forklab
from forklab import PTHREAD_FLAGS
from forklab.render.ps import ps_rows, status_text


def test_stat_marks_session_leaders_and_threaded_processes() -> None:
    k = forklab.boot()
    init = k.task(1)
    leader = k.task(init.fork())
    leader.setsid()
    stack = leader.mmap(1 << 16)
    tid = leader.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=stack, child_tid=stack, tls=stack)
    zombie = k.task(init.fork())
    zombie.exit(1)
    rows = {row[0]: row for row in ps_rows(k)}
    assert rows[str(leader.pid)] == (str(leader.pid), "1", str(leader.pid), "Rsl", "init", str(leader.pid))
    assert rows[str(tid)][1:4] == ("1", str(leader.pid), "Rsl")  # each thread's row, as ps -L shows it
    assert rows[str(zombie.pid)][3] == "Z"
    assert rows["2"][4] == "[kthreadd]"


def test_names_make_a_column() -> None:
    k = forklab.boot()
    init = k.task(1)
    assert all(row[-1] == ("t0" if row[0] == "1" else "") for row in ps_rows(k, {"t0": init}))


def test_status_text_reads_as_the_file() -> None:
    k = forklab.boot()
    text = status_text(k.task(1))
    assert text.startswith("Name:\tinit\n") and "\nPid:\t1\n" in text and text.endswith("\n")
