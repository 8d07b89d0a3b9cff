"""Boot: init_task, rest_init's two tasks, the root file system, the version profiles."""

from __future__ import annotations

import pytest

import forklab
from forklab import O_RDONLY


def test_boot_makes_init_and_kthreadd(k: forklab.Kernel) -> None:
    tasks = {t.pid: t for t in k.tasks()}
    assert sorted(tasks) == [1, 2]
    init, kthreadd = tasks[1], tasks[2]
    assert (init.comm, init.state) == ("init", "R")
    assert (kthreadd.comm, kthreadd.state) == ("kthreadd", "S")
    assert init.status()["PPid"] == "0" and kthreadd.status()["PPid"] == "0"
    assert init.status()["Kthread"] == "0" and kthreadd.status()["Kthread"] == "1"


def test_init_task_is_swapper_with_pid_zero(k: forklab.Kernel) -> None:
    machine = k.machine
    swapper = machine.init_task
    assert (swapper.pid, swapper.comm) == (0, "swapper/0")
    # One idle task per CPU, none of them on the task lists.
    assert [t.comm for t in machine.idle_tasks] == ["swapper/0", "swapper/1"]
    assert all(t.pid == 0 for t in machine.idle_tasks)
    assert swapper not in machine.tasks


def test_kthreadd_is_a_kernel_thread_ignoring_signals(k: forklab.Kernel) -> None:
    status = k.task(2).status()
    assert status["SigIgn"] == "ffffffffffffffff"
    assert "VmSize" not in status  # a kernel thread has no mm
    assert k.task(2).task_struct.mm is None


def test_init_has_the_console_on_fds_0_1_2(init: forklab.TaskHandle) -> None:
    files = init.task_struct.files
    assert files is not None
    assert [files.fd[fd].inode.name for fd in (0, 1, 2)] == ["console"] * 3  # type: ignore[union-attr]
    assert files.fd[0] is files.fd[1] is files.fd[2]
    assert init.write(1, "hello\n") == 6
    assert init.kernel.console == "hello\n"
    assert init.open("/dev/null", O_RDONLY) == 3


def test_pid_1_shares_fs_with_swapper_and_kthreadd(k: forklab.Kernel) -> None:
    """rest_init passes CLONE_FS to both, CLONE_FILES to kthreadd only."""
    machine = k.machine
    swapper = machine.init_task
    assert k.task(1).task_struct.fs is swapper.fs
    assert k.task(2).task_struct.fs is swapper.fs
    assert k.task(2).task_struct.files is swapper.files
    assert k.task(1).task_struct.files is not swapper.files


def test_root_filesystem_has_the_programs(init: forklab.TaskHandle) -> None:
    for path in ("/sbin/init", "/bin/sh", "/sbin/getty", "/bin/login", "/bin/ls", "/dev/null"):
        fd = init.open(path)
        init.close(fd)
    assert init.getcwd() == "/"


def test_boot_is_consistent_and_deterministic() -> None:
    a, b = forklab.boot(seed=7), forklab.boot(seed=7)
    a.check()
    assert a.counts() == b.counts()
    for k in (a, b):
        init = k.task(1)
        pid = init.fork()
        k.task(pid).exit(0)
        init.wait4()
    assert a.trace_text() == b.trace_text()


@pytest.mark.parametrize("version", ["5.10", "5.15", "6.1", "6.6", "6.12", "6.18"])
def test_every_profile_boots(version: str) -> None:
    k = forklab.boot(version=version)
    assert k.version == version
    assert k.task(1).uname()[2].startswith(version)
    k.check()


@pytest.mark.parametrize("version", ["2.6.18", "4.9", "7.0", "banana"])
def test_unmodelled_versions_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="not"):
        forklab.boot(version=version)


def test_max_threads_follows_memory() -> None:
    """set_max_threads(): thread structures may take at most an eighth of RAM (16 KiB stacks)."""
    k = forklab.boot(memory=8 << 30)
    assert k.task(1).read_file("/proc/sys/kernel/threads-max") == "65536\n"
    assert k.task(1).getrlimit(forklab.RLIMIT_NPROC) == (32768, 32768)
