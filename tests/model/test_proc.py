"""/proc/<pid>/status and friends, in Linux's formatting."""

from __future__ import annotations

import forklab
from forklab import CLONE_NEWPID, CLONE_NEWUSER, SIG_BLOCK, SIG_IGN, SIGCHLD, SIGUSR1, SIGUSR2

FIELDS = [
    "Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "FDSize",
    "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "Kthread", "VmPeak", "VmSize", "VmLck", "VmPin",
    "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE",
    "VmSwap", "HugetlbPages", "CoreDumping", "THP_enabled", "untag_mask", "Threads", "SigQ", "SigPnd",
    "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
    "NoNewPrivs", "Seccomp", "Seccomp_filters", "Cpus_allowed", "Cpus_allowed_list", "Mems_allowed",
    "Mems_allowed_list", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches",
]  # fmt: skip


def test_status_lines_in_order(init: forklab.TaskHandle) -> None:
    text = init.read_file("/proc/self/status")
    assert [line.split(":")[0] for line in text.splitlines()] == FIELDS
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert lines["Name"] == "\tinit"
    assert lines["Umask"] == "\t0022"
    assert lines["State"] == "\tR (running)"
    assert lines["Uid"] == "\t0\t0\t0\t0"
    assert lines["Groups"] == "\t "
    assert lines["NSpgid"] == "\t0"  # init has not called setsid: pgrp is init_struct_pid
    assert lines["VmStk"] == "\t     132 kB"
    assert lines["CapEff"] == "\t000001ffffffffff"
    assert lines["Cpus_allowed"] == "\t3" and lines["Cpus_allowed_list"] == "\t0-1"
    assert lines["Mems_allowed"].count(",") == 31


def test_signal_masks(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.sigaction(SIGUSR1, 0x401000)
    child.sigaction(SIGUSR2, SIG_IGN)
    child.sigprocmask(SIG_BLOCK, 1 << (SIGCHLD - 1))
    status = child.status()
    assert status["SigCgt"] == f"{1 << (SIGUSR1 - 1):016x}"
    assert status["SigIgn"] == f"{1 << (SIGUSR2 - 1):016x}"
    assert status["SigBlk"] == f"{1 << (SIGCHLD - 1):016x}"


def test_namespaced_view(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.clone(CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD))
    inside = child.read_file("/proc/self/status")  # /proc still shows the initial namespaces
    lines = dict(line.split(":\t", 1) for line in inside.splitlines())
    assert lines["NSpid"] == f"{child.pid}\t1"
    assert lines["Uid"] == "65534\t65534\t65534\t65534"  # kuid 0 is unmapped in the child's namespace
    assert k.task(child.pid).status()["Uid"] == "0\t0\t0\t0"


def test_thread_status_and_task_dir(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    from forklab import PTHREAD_FLAGS

    stack = init.mmap(1 << 16)
    tid = init.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=stack, child_tid=stack, tls=stack)
    status = init.read_file(f"/proc/1/task/{tid}/status")
    lines = dict(line.split(":\t", 1) for line in status.splitlines())
    assert (lines["Tgid"], lines["Pid"], lines["Threads"]) == ("1", str(tid), "2")
    # /proc/<tid> is reachable though not listed.
    assert init.read_file(f"/proc/{tid}/comm") == "init\n"


def test_stat_and_children(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    pid = init.fork()
    assert init.read_file("/proc/1/stat") == "1 (init) R 0 0 0\n"
    assert init.read_file("/proc/1/task/1/children") == f"{pid} "


def test_sysctls(init: forklab.TaskHandle) -> None:
    assert init.read_file("/proc/sys/kernel/threads-max") == "131072\n"
    assert init.read_file("/proc/sys/user/max_user_namespaces") == "65536\n"
    assert init.read_file("/proc/sys/kernel/ns_last_pid") == "2\n"
