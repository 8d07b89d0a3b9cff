"""cgroup v2 against the host: the built-in cgroup scenarios agree, the sandbox's v2 cgroup is
what the probe says (so the model side is set up alike), and nothing made in it outlives it.

The probe (host/cgroup.py v2_setup) adapts to the machine: on a hybrid layout (pids bound to
v1, as on the reference machine) the sandbox gets a v2 directory of its own without pids; on a
pure v2 machine its pids cgroup is that directory, with pids available in it. What the
reference machine (Linux 6.18.44) showed: v1 hierarchies for cpu, cpuacct, cpuset, memory,
devices, freezer, blkio, pids and name=systemd, cgroup2 at /sys/fs/cgroup/unified mounted
without nsdelegate, this process in its root (0::/), only hugetlb in its cgroup.controllers and
nothing in its cgroup.subtree_control; mounting cgroup2 in the sandbox needs a cgroup namespace
of its own (else EPERM).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from forklab.diff.campaign import BUILTIN, run_campaign, scenario_jobs
from forklab.host import Sandbox
from forklab.host.cgroup import DELEGATED_FILES, v2_setup
from forklab.uapi.fcntl import O_DIRECTORY, O_RDONLY
from forklab.uapi.sched import CLONE_INTO_CGROUP, CLONE_NEWCGROUP
from forklab.uapi.signal import SIGCHLD
from tests.conftest import clone_args

pytestmark = pytest.mark.host

SCENARIOS = sorted(BUILTIN.glob("*-cgroup-*.forklab"))


def test_the_cgroup_scenarios_agree() -> None:
    assert len(SCENARIOS) >= 4
    campaign = run_campaign(scenario_jobs(SCENARIOS))
    problems = [f"{r.name}: {r.error} {r.disagreements[:3]}" for r in campaign.results if r.verdict != "agrees"]
    assert campaign.passed, "\n".join(problems)
    assert campaign.steps > 150


def _host_uid(host_pid: int) -> int:
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_the_sandbox_cgroup_is_as_probed() -> None:
    setup = v2_setup()
    with Sandbox(max_tasks=16, timeout=5.0) as sb:
        path = sb.v2_cgroup_path
        assert path is not None
        init = sb.init
        if setup.delegated:
            owner = _host_uid(init.host_pid)
            assert {os.stat(p).st_uid for p in (path, *(f"{path}/{n}" for n in DELEGATED_FILES))} == {owner}
            lines = Path(f"/proc/{init.host_pid}/cgroup").read_text().splitlines()
            assert any(line.startswith("0::") and line.endswith(f"/{Path(path).name}") for line in lines), lines
            assert ("pids" in Path(path, "cgroup.controllers").read_text().split()) == setup.pids
        assert init.call("unshare", CLONE_NEWCGROUP).ret == 0
        assert init.call("mount", "cgroup2", "/tmp", "cgroup2").ret == 0
        made = init.call("mkdir", "/tmp/a").ret
        assert made == (0 if setup.delegated else -13)


def test_cgroups_made_inside_go_with_the_sandbox() -> None:
    """Nested cgroups, one holding a live task, are all removed when the sandbox closes, even
    when the code using it failed."""
    with pytest.raises(RuntimeError), Sandbox(max_tasks=16, timeout=5.0) as sb:
        path = sb.v2_cgroup_path
        init = sb.init
        init.call("unshare", CLONE_NEWCGROUP)
        init.call("mount", "cgroup2", "/tmp", "cgroup2")
        for name in ("/tmp/a", "/tmp/a/b", "/tmp/a/b/c"):
            init.call("mkdir", name)
        fd = init.call("open", "/tmp/a/b/c", O_RDONLY | O_DIRECTORY).ret
        child = init.call("clone3", flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=fd)
        if v2_setup().delegated:
            assert child.ret > 0
            assert Path(str(path), "a/b/c/cgroup.procs").read_text().split() != []
        raise RuntimeError("the test fails midway")
    assert path is not None and not Path(path).exists()


def test_clone_into_cgroup_needs_the_whole_struct() -> None:
    """The raw rule the model's test pins (tests/model/test_cgroup.py), on the host."""
    with Sandbox(max_tasks=16, timeout=5.0) as sb:
        init = sb.init
        init.call("unshare", CLONE_NEWCGROUP)
        init.call("mount", "cgroup2", "/tmp", "cgroup2")
        fd = init.call("open", "/tmp", O_RDONLY | O_DIRECTORY).ret
        addr = init.call("mmap", 4096).ret
        init.call("poke", addr, clone_args(CLONE_INTO_CGROUP, fd))
        assert init.call("clone3_raw", addr, 80).ret == -errno.EINVAL
        init.call("poke", addr, clone_args(CLONE_INTO_CGROUP, 1 << 31))
        assert init.call("clone3_raw", addr, 88).ret == -errno.EINVAL
        init.call("poke", addr, clone_args(CLONE_INTO_CGROUP, fd))
        assert init.call("clone3_raw", addr, 88).ret > 0
