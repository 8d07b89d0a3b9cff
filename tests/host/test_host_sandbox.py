"""The sandbox itself: isolation, the task cap, time limits, cleanup, errors."""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import forklab.host.sandbox as sandbox_module
from forklab.host import (
    RESERVED_FDS,
    HostError,
    HostTaskBusy,
    HostTaskGone,
    HostTimeout,
    HostUnavailable,
    Sandbox,
)
from forklab.host.tracing import remove_idle
from forklab.uapi import (
    CLONE_NEWUTS,
    EAGAIN,
    PTRACE_CONT,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_STOP,
    PTRACE_O_TRACEEXIT,
    PTRACE_O_TRACEFORK,
    PTRACE_SEIZE,
    RLIMIT_NOFILE,
    SIGKILL,
    SIGTRAP,
)
from forklab.uapi.sched import THREAD_FLAGS
from forklab.uapi.wait import __WALL, WNOHANG

pytestmark = pytest.mark.host

INSTANCES = Path("/sys/kernel/tracing/instances")


def _mounts() -> set[str]:
    return {" ".join(line.split()[3:5]) for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def _pidfds(sb: Sandbox) -> list[int]:
    return [os.pidfd_open(task.host_pid) for task in sb.tasks()]


def _all_released(pidfds: list[int]) -> bool:
    """POLLHUP on a pidfd: the task has been reaped, nothing of it is left."""
    try:
        poller = select.poll()
        for fd in pidfds:
            poller.register(fd, select.POLLIN)
        return len([e for _, e in poller.poll(0) if e & select.POLLHUP]) == len(pidfds)
    finally:
        for fd in pidfds:
            os.close(fd)


def test_first_task_is_pid_1_of_a_fresh_namespace(sb: Sandbox) -> None:
    init = sb.init
    assert init.pid == 1
    assert init.call("getpid").ret == 1
    assert init.call("getppid").ret == 0
    status = sb.status(init)
    assert status["NSpid"] == "1"
    assert status["PPid"] == "0"
    assert status["Name"] == "init"
    assert init.host_pid != 1
    assert Path(f"/proc/{init.host_pid}/status").read_text().count("NSpid:\t") == 1


def test_root_inside_mapped_from_outside(sb: Sandbox) -> None:
    init = sb.init
    for name in ("getuid", "geteuid", "getgid", "getegid"):
        assert init.call(name).ret == 0
    # The namespace's ids are a private range of host ids, never the host's root.
    first, lower, count = (int(word) for word in init.call("read_file", "/proc/self/uid_map").data.split())
    assert (first, count) == (0, 65536) and lower > 0 and lower % 65536 == 0
    assert sb.status(init)["CapEff"] == "000001ffffffffff"
    # So the machine's global sysctls stay out of reach (sysctl_perm wants host uid 0).
    threads_max = Path("/proc/sys/kernel/threads-max")
    before = threads_max.read_text()
    assert init.call("write_file", str(threads_max), b"100").ret == -errno.EACCES
    assert threads_max.read_text() == before
    assert os.readlink(f"/proc/{init.host_pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_hostname_and_mounts_stay_inside(sb: Sandbox) -> None:
    host_name, host_mounts = socket.gethostname(), _mounts()
    init = sb.init
    assert init.call("uname").data[1] == "forklab"
    assert init.call("sethostname", "elsewhere").ret == 0
    assert init.call("mount", "none", "/tmp", "tmpfs").ret == 0
    assert init.call("uname").data[1] == "elsewhere"
    assert socket.gethostname() == host_name
    assert _mounts() == host_mounts


def test_root_file_system_is_the_models(sb: Sandbox) -> None:
    init = sb.init
    mounts = init.call("read_file", "/proc/self/mountinfo").data.decode()
    assert [line.split()[4] for line in mounts.splitlines()] == ["/", "/dev/null", "/tmp", "/proc"]
    for path in ("/sbin/init", "/bin/sh", "/sbin/getty", "/bin/login", "/bin/ls"):
        assert init.call("open", path, 0).ret >= 3
    assert init.call("readlink", "/proc/self/exe").data == "/sbin/init"


def test_puppet_fds_stay_out_of_the_way(sb: Sandbox) -> None:
    init = sb.init
    assert {int(fd) for fd in os.listdir(f"/proc/{init.host_pid}/fd")} == {0, 1, 2, 63}
    assert sb.status(init)["FDSize"] == "64"
    child = init.call("fork").child
    assert child is not None
    assert child.call("getpid").ret > 1  # the child has answered: its own setup is over
    fds = {int(fd) for fd in os.listdir(f"/proc/{child.host_pid}/fd")}
    assert fds - {0, 1, 2} <= RESERVED_FDS
    assert len(fds) == 4
    assert child.call("open", "/dev/null", 0).ret == 3


def test_tasks_go_in_the_cgroup(sb: Sandbox) -> None:
    assert sb.cgroup_path is not None
    assert Path(sb.cgroup_path, "pids.max").read_text().strip() == "32"
    child = sb.init.call("fork").child
    assert child is not None
    assert Path(sb.cgroup_path, "pids.current").read_text().strip() == "2"
    assert Path(sb.cgroup_path).name in Path(f"/proc/{child.host_pid}/cgroup").read_text()


def test_task_cap_gives_eagain_and_the_machine_is_fine() -> None:
    with Sandbox(max_tasks=6, timeout=5.0) as sb:
        results = [sb.init.call("fork") for _ in range(8)]
        assert [r.ret > 0 for r in results] == [True] * 5 + [False] * 3
        assert {r.ret for r in results[5:]} == {-EAGAIN}
        assert len(sb.tasks()) == 6
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_call_that_never_returns_times_out_and_kills_everything() -> None:
    sb = Sandbox(timeout=0.2)
    with sb:
        init = sb.init
        read_end = init.call("pipe").data[0]
        assert init.call("read", read_end, 1).pending
        pidfds = _pidfds(sb)
        started = time.monotonic()
        with pytest.raises(HostTimeout, match=r"no answer within 0\.2 s"):
            init.result()
        assert time.monotonic() - started < 1.0
        assert _all_released(pidfds)
        assert sb.cgroup_path is not None and not os.path.exists(sb.cgroup_path)
        with pytest.raises(HostError, match="closed"):
            init.call("getpid")


def test_the_sandbox_as_a_whole_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(total_timeout=60.0) as sb:
        # Its limit passes (jumping the clock: a loaded machine may take long to boot a sandbox).
        later = time.monotonic() + 61.0
        monkeypatch.setattr(sandbox_module, "time", SimpleNamespace(monotonic=lambda: later, sleep=time.sleep))
        with pytest.raises(HostTimeout, match="outlived"):
            sb.init.call("getpid")


@pytest.mark.parametrize("trace", [False, True])
def test_nothing_survives_a_sandbox(trace: bool) -> None:
    with Sandbox(timeout=5.0, trace=trace) as sb:
        init = sb.init
        child = init.call("fork").child
        assert child is not None
        child.call("fork")
        init.call("vfork")  # the parent stays asleep: teardown must cope
        pidfds = _pidfds(sb)
        assert len(pidfds) == 4
        cgroup = sb.cgroup_path
    assert _all_released(pidfds)
    assert cgroup is not None and not os.path.exists(cgroup)


def test_teardown_frees_a_thread_of_pid_1_held_by_its_tracer() -> None:
    """Killed while traced with PTRACE_O_TRACEEXIT, a thread of pid 1 stops on its way out; pid
    1's group is then not dead, so its namespace is not killed, and only the tracer's death lets
    the thread go: teardown kills every task, not pid 1 alone."""
    with Sandbox(timeout=5.0) as sb:
        init = sb.init
        stack = init.call("mmap", 65536).ret
        thread = init.call("clone", THREAD_FLAGS, stack + 65536).child
        tracer = init.call("fork").child
        assert thread is not None and tracer is not None
        assert tracer.call("ptrace", PTRACE_SEIZE, thread.pid, 0, PTRACE_O_TRACEEXIT).ret == 0
        pidfds = [os.pidfd_open(task.host_pid, os.O_EXCL) for task in sb.tasks()]  # PIDFD_THREAD
        cgroup = sb.cgroup_path
    assert _all_released(pidfds)
    assert cgroup is not None and not os.path.exists(cgroup)


def test_trace_instances_are_idle_between_sandboxes_and_removed_at_exit() -> None:
    with Sandbox(trace=True) as sb:
        sb.init.call("fork")
    ours = sorted(INSTANCES.glob(f"forklab-{os.getpid()}-*"))
    assert ours and all((inst / "tracing_on").read_text() == "0\n" for inst in ours)
    with Sandbox(trace=True) as sb:
        assert sorted(INSTANCES.glob(f"forklab-{os.getpid()}-*")) == ours  # reused, not made anew
        assert [r.event for r in sb.trace()] == []
    remove_idle()
    assert not any(inst.exists() for inst in ours)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_cleanup_after_an_exception(error: type[BaseException]) -> None:
    with pytest.raises(error), Sandbox() as sb:
        sb.init.call("fork")
        pidfds = _pidfds(sb)
        raise error()
    assert _all_released(pidfds)
    assert sb.cgroup_path is not None and not os.path.exists(sb.cgroup_path)


def test_cleanup_when_forgotten() -> None:
    sb = Sandbox()
    sb.start()
    pidfds, cgroup = _pidfds(sb), sb.cgroup_path
    del sb
    gc.collect()
    assert _all_released(pidfds)
    assert cgroup is not None and not os.path.exists(cgroup)


def test_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "host_available", lambda: (False, "needs root"))
    with pytest.raises(HostUnavailable, match="needs root"), Sandbox():
        pass


def test_a_pending_call_blocks_the_next_one_until_collected(sb: Sandbox) -> None:
    init = sb.init
    child = init.call("fork").child
    assert child is not None
    waiting = init.call("wait4", -1, 0)
    assert waiting.pending and init.pending
    assert sb.status(init)["State"].startswith("S")
    with pytest.raises(HostTaskBusy, match="asleep in wait4"):
        init.call("getpid")
    assert child.call("exit", 7).gone
    assert init.call("getpid").ret == 1  # the wait came back meanwhile
    assert init.result().data == (2, 7 << 8)
    assert not init.pending


def test_dead_tasks_take_no_calls(sb: Sandbox) -> None:
    init = sb.init
    child = init.call("fork").child
    assert child is not None
    assert init.call("kill", child.pid, SIGKILL).ret == 0
    assert init.call("wait4", child.pid, 0).data == (child.pid, SIGKILL)
    assert not child.alive
    with pytest.raises(HostTaskGone):
        child.call("getpid")
    assert init.call("wait4", -1, WNOHANG).ret < 0


def test_user_errors_are_clear(sb: Sandbox) -> None:
    init = sb.init
    with pytest.raises(HostError, match="unknown call 'frobnicate'"):
        init.call("frobnicate")
    with pytest.raises(TypeError):
        init.call("getpid", 1)
    with pytest.raises(TypeError, match="integer"):
        init.call("unshare", "CLONE_NEWUTS")
    with pytest.raises(ValueError, match="4096"):
        init.call("read", 0, 1 << 20)
    with pytest.raises(HostError, match="no pending call"):
        init.result()
    assert init.call("unshare", CLONE_NEWUTS).ret == 0  # still usable


def test_the_puppet_says_when_it_cannot_do_its_part(sb: Sandbox) -> None:
    init = sb.init
    assert init.call("setrlimit", RLIMIT_NOFILE, (10, 10)).ret == 0
    with pytest.raises(HostError, match=r"control channel .* RLIMIT_NOFILE"):
        init.call("fork")
    assert {int(fd) for fd in os.listdir(f"/proc/{init.host_pid}/fd")} == {0, 1, 2, 63}
    assert sb.tasks() == [init] and sb.task(1) is init


def test_sandboxes_are_quick() -> None:
    started = time.monotonic()
    for _ in range(5):
        with Sandbox() as sb:
            for _ in range(20):
                sb.init.call("getpid")
    assert time.monotonic() - started < 2.0


def test_a_child_traced_from_birth_is_followed_once_its_tracer_lets_it_go(sb: Sandbox) -> None:
    """A seized parent with PTRACE_O_TRACEFORK: its fork stops in the event, and the child stops
    before it can say hello. The child is known at once; its channel comes once it runs."""
    init = sb.init
    parent = init.call("fork").child
    assert parent is not None
    assert init.call("ptrace", PTRACE_SEIZE, parent.pid, 0, PTRACE_O_TRACEFORK).ret == 0
    forking = parent.call("fork")
    child = forking.child
    assert forking.pending and child is not None and child.pid == parent.pid + 1
    assert sb.status(child)["State"].startswith("t")
    with pytest.raises(HostTaskBusy, match="stopped"):
        child.call("getpid")
    assert init.call("wait4", parent.pid, 0).data == (parent.pid, ((PTRACE_EVENT_FORK << 8 | SIGTRAP) << 8) | 0x7F)
    # The parent goes first: its fork returns, the child still stopped.
    assert init.call("ptrace", PTRACE_CONT, parent.pid, 0, 0).ret == 0
    assert parent.result().ret == child.pid and parent.result().child is child
    assert init.call("wait4", child.pid, __WALL).data == (child.pid, ((PTRACE_EVENT_STOP << 8 | SIGTRAP) << 8) | 0x7F)
    assert init.call("ptrace", PTRACE_CONT, child.pid, 0, 0).ret == 0
    assert child.call("getppid").ret == parent.pid
    assert parent.call("getpid").ret == parent.pid
