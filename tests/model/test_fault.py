"""Failures at every allocation of the clone path (fail-nth), and the unwinding that follows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import forklab
from forklab import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_PIDFD,
    ENOMEM,
    O_RDWR,
    PTHREAD_FLAGS,
    SEEK_SET,
    SIGCHLD,
    SIGKILL,
    SyscallError,
)
from forklab.kernel import fork as kfork
from forklab.kernel.fork import BAD_FORK_LADDER

# What a failed clone leaves behind in the kernel too, because it belongs to the caller:
# copy_semundo's get_undo_list() creates the caller's own undo list, and the private futex
# hash of a process that started threads is kept on purpose (reference §1.5).
KEPT_BY_THE_CALLER = {"slab:sem_undo_list", "slab:futex_private_hash"}

ALL_NAMESPACES = (
    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP
)


class FailNth:
    """/proc/thread-self/fail-nth, opened once (reopening it is itself an allocation)."""

    def __init__(self, task: forklab.TaskHandle) -> None:
        self.task = task
        self.fd = task.open("/proc/thread-self/fail-nth", O_RDWR)

    def set(self, n: int) -> None:
        self.task.lseek(self.fd, 0, SEEK_SET)
        self.task.write(self.fd, str(n))

    def get(self) -> int:
        self.task.lseek(self.fd, 0, SEEK_SET)
        return int(self.task.read(self.fd, 32))  # type: ignore[arg-type]


def sweep(
    make: Callable[[forklab.TaskHandle, int], object], setup: Callable[[forklab.TaskHandle], int] = lambda t: 0
) -> list[tuple[str, str | None]]:
    """Fail the 1st, 2nd, ... allocation until the call succeeds; returns (site, label) per N.

    ``setup`` runs first (its allocations are not part of the sweep) and returns a value,
    an address say, that ``make`` is given.
    """
    k = forklab.boot()
    init = k.task(1)
    value = setup(init)
    fail = FailNth(init)
    before = k.counts()
    seen: list[tuple[str, str | None]] = []
    for n in range(1, 200):
        fail.set(n)
        try:
            make(init, value)
        except SyscallError as err:
            assert err.errno == ENOMEM, err
            assert "fault injected" in err.reason
            assert fail.get() == 0
            k.check()
            after = k.counts()
            changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
            assert changed <= KEPT_BY_THE_CALLER, (n, err.reason, changed)
            seen.append((err.reason.split(":")[0], err.unwound_from))
            continue
        assert fail.get() == 1  # one point short of the next fault: the count was exact
        fail.set(0)
        k.check()
        return seen
    raise AssertionError("the call never succeeded")


def test_sweep_fork() -> None:
    seen = sweep(lambda t, _: t.fork())
    sites = [site for site, _ in seen]
    assert sites[:3] == ["task_struct", "thread_stack", "cred_jar"]
    assert {"files_cache", "fs_cache", "sighand_cache", "signal_cache", "mm_struct", "pgd", "pid"} <= set(sites)
    # Each failure unwound from the label the kernel jumps to for that step.
    labels = dict(seen)
    assert labels["task_struct"] is None or labels["task_struct"] == "fork_out"
    assert labels["cred_jar"] == "bad_fork_free"
    assert labels["files_cache"] == "bad_fork_cleanup_semundo"
    assert labels["fs_cache"] == "bad_fork_cleanup_files"
    assert labels["sighand_cache"] == "bad_fork_cleanup_fs"
    assert labels["signal_cache"] == "bad_fork_cleanup_sighand"
    assert labels["mm_struct"] == "bad_fork_cleanup_signal"
    assert labels["pid"] == "bad_fork_cleanup_thread"


def test_sweep_thread() -> None:
    def thread(t: forklab.TaskHandle, stack: int) -> object:
        return t.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=stack, child_tid=stack, tls=stack)

    seen = sweep(thread, lambda t: t.mmap(1 << 16))
    sites = [site for site, _ in seen]
    # A thread shares files, fs, sighand, signal and mm: none of those are allocated.
    assert not {"files_cache", "fs_cache", "sighand_cache", "signal_cache", "mm_struct"} & set(sites)
    assert "sem_undo_list" in sites and "futex_private_hash" in sites


def test_sweep_namespace_clone() -> None:
    seen = sweep(lambda t, _: t.clone(ALL_NAMESPACES | SIGCHLD))
    sites = [site for site, _ in seen]
    for cache in ("user_namespace", "nsproxy", "mnt_namespace", "uts_namespace", "ipc_namespace",
                  "pid_namespace", "cgroup_namespace", "net_namespace"):  # fmt: skip
        assert cache in sites, cache
    assert dict(seen)["user_namespace"] == "bad_fork_free"
    assert dict(seen)["nsproxy"] == "bad_fork_cleanup_mm"


def test_sweep_clone3_with_pidfd_and_set_tid() -> None:
    def clone3(t: forklab.TaskHandle, word: int) -> object:
        return t.clone3(flags=CLONE_PIDFD | CLONE_NEWTIME, pidfd=word, exit_signal=SIGCHLD, set_tid=[4000])

    seen = sweep(clone3, lambda t: t.mmap(4096))
    assert ("filp", "bad_fork_free_pid") in seen  # pidfd_prepare's file


def test_every_ladder_label_is_a_kernel_label() -> None:
    labels = [label for label, _ in BAD_FORK_LADDER]
    assert labels[0] == "bad_fork_core_free" and labels[-1] == "fork_out"
    assert len(labels) == len(set(labels)) == 22


# ---- failures another CPU would cause, while copy_process is past its early checks ----------------


def test_fatal_signal_during_fork_is_eintr(
    monkeypatch: pytest.MonkeyPatch, k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    """SIGKILL arriving after the pending-signal check: the in-lock test refuses with EINTR."""
    child = k.task(init.fork())
    before = k.counts()
    real = kfork.sched_cgroup_fork

    def killed_meanwhile(machine: object, current: object, p: object) -> None:
        real(machine, current, p)  # type: ignore[arg-type]
        child.task_struct.pending.signal |= 1 << (SIGKILL - 1)
        child.task_struct.tif_sigpending = True  # as the sender's signal_wake_up() leaves it

    monkeypatch.setattr(kfork, "sched_cgroup_fork", killed_meanwhile)
    with pytest.raises(forklab.TaskGoneError):
        child.fork()  # EINTR in the kernel; the task then dies of its SIGKILL
    monkeypatch.undo()
    after = k.counts()
    assert after["nr_threads"] == before["nr_threads"]  # the child is a zombie, nothing was added
    assert init.wait4() == (child.pid, SIGKILL)
    k.check()


def test_namespace_dying_during_fork_is_enomem(
    monkeypatch: pytest.MonkeyPatch, k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    parent = k.task(init.fork())
    parent.unshare(CLONE_NEWPID)
    ns_init = parent.task(parent.fork())
    real = kfork.sched_cgroup_fork

    def init_died_meanwhile(machine: object, current: object, p: object) -> None:
        real(machine, current, p)  # type: ignore[arg-type]
        ns = ns_init.task_struct.thread_pid.numbers[-1][1]  # type: ignore[union-attr]
        ns.pid_allocated &= ~forklab.kernel.pid_namespace.PIDNS_ADDING

    monkeypatch.setattr(kfork, "sched_cgroup_fork", init_died_meanwhile)
    with pytest.raises(SyscallError) as info:
        parent.fork()
    assert info.value.errno == ENOMEM and info.value.unwound_from == "bad_fork_core_free"
    monkeypatch.undo()
    k.check()


def test_pending_signal_restarts_the_fork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """ERESTARTNOINTR: the signal is handled, then fork runs again and succeeds."""
    parent = k.task(init.fork())
    parent.sigaction(forklab.SIGUSR1, 0x401000)
    parent.task_struct.pending.signal |= 1 << (forklab.SIGUSR1 - 1)
    before = k.machine.total_forks
    pid = parent.fork()
    assert pid > 0
    assert k.machine.total_forks == before + 1  # the first attempt made nothing
    assert parent.status()["SigPnd"] == "0000000000000000"
    k.check()
