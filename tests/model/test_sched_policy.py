"""Scheduling policy and nice value: sched_setattr/getattr, sched_setscheduler/getscheduler,
sched_setparam/getparam, sched_get_priority_max/min, setpriority/getpriority, and what
sched_fork does with them."""

from __future__ import annotations

import struct

import pytest

import forklab
from forklab import (
    CLONE_NEWPID,
    CLONE_NEWUSER,
    E2BIG,
    EACCES,
    EAGAIN,
    EBUSY,
    EFAULT,
    EINVAL,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
    PRIO_PGRP,
    PRIO_PROCESS,
    PRIO_USER,
    RLIMIT_NICE,
    RLIMIT_RTPRIO,
    SCHED_ATTR_LAYOUT,
    SCHED_BATCH,
    SCHED_DEADLINE,
    SCHED_EXT,
    SCHED_FIFO,
    SCHED_FLAG_DL_OVERRUN,
    SCHED_FLAG_KEEP_PARAMS,
    SCHED_FLAG_KEEP_POLICY,
    SCHED_FLAG_RESET_ON_FORK,
    SCHED_FLAG_UTIL_CLAMP_MAX,
    SCHED_FLAG_UTIL_CLAMP_MIN,
    SCHED_IDLE,
    SCHED_NORMAL,
    SCHED_RESET_ON_FORK,
    SCHED_RR,
    SIGCHLD,
    THREAD_FLAGS,
    SchedAttr,
    SyscallError,
)
from forklab.kernel.errors import KernelBug

MS = 1_000_000
BASE_SLICE = 1_400_000  # 0.70 ms scaled for 2 CPUs (6.18)


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def ns_root(init: forklab.TaskHandle) -> forklab.TaskHandle:
    """Root of a new user namespace (ids mapped as the diff sandbox maps them): every
    capability there, none in the initial namespace."""
    child = init.task(init.clone(CLONE_NEWUSER | SIGCHLD))
    for name in ("uid_map", "gid_map"):
        init.write_file(f"/proc/{child.pid}/{name}", "0 100000 65536\n")
    child.setresuid(0, 0, 0)
    return child


def user(init: forklab.TaskHandle, uid: int) -> forklab.TaskHandle:
    child = init.task(init.fork())
    child.setresuid(uid, uid, uid)
    return child


# ---- ranges and defaults ------------------------------------------------------------------------


def test_priority_ranges(init: forklab.TaskHandle) -> None:
    assert [init.sched_get_priority_max(p) for p in (SCHED_FIFO, SCHED_RR)] == [99, 99]
    assert [init.sched_get_priority_min(p) for p in (SCHED_FIFO, SCHED_RR)] == [1, 1]
    for policy in (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE, SCHED_EXT):
        assert init.sched_get_priority_max(policy) == init.sched_get_priority_min(policy) == 0
    for policy in (4, 8, -1):
        assert errno_of(lambda policy=policy: init.sched_get_priority_max(policy)) == EINVAL
        assert init.syscall("sched_get_priority_min", policy) == -EINVAL


def test_sched_ext_range_is_known_from_6_12() -> None:
    assert forklab.boot(version="6.12").task(1).sched_get_priority_max(SCHED_EXT) == 0
    assert errno_of(lambda: forklab.boot(version="6.6").task(1).sched_get_priority_max(SCHED_EXT)) == EINVAL


def test_defaults(init: forklab.TaskHandle) -> None:
    assert init.sched_getattr() == SchedAttr(sched_runtime=BASE_SLICE)
    assert (init.sched_getscheduler(), init.sched_getparam(), init.getpriority(PRIO_PROCESS)) == (0, 0, 0)
    assert init.syscall("getpriority", PRIO_PROCESS, 0) == 20  # the raw call: 20 - nice


def test_base_slice_and_fair_runtime_per_version() -> None:
    assert forklab.boot(version="6.12").task(1).sched_getattr().sched_runtime == 1_500_000
    old = forklab.boot(version="6.6").task(1)
    old.sched_setattr(0, SCHED_NORMAL, runtime=5 * MS)
    assert old.sched_getattr().sched_runtime == 0  # fair tasks had no slice of their own before 6.12


# ---- permission -----------------------------------------------------------------------------------


def test_real_time_in_a_user_namespace_is_eperm(init: forklab.TaskHandle) -> None:
    root = ns_root(init)
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_FIFO, 10)) == EPERM
    assert errno_of(lambda: root.sched_setattr(0, SCHED_RR, priority=1)) == EPERM
    assert errno_of(lambda: root.sched_setattr(0, SCHED_DEADLINE, runtime=MS, deadline=10 * MS)) == EPERM
    assert root.sched_getscheduler() == SCHED_NORMAL


def test_rlimit_rtprio_allows_real_time_up_to_it(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.setrlimit(RLIMIT_RTPRIO, (10, 10))
    root = ns_root(init)
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_FIFO, 11)) == EPERM
    root.sched_setscheduler(0, SCHED_FIFO, 10)
    root.sched_setscheduler(0, SCHED_RR, 10)  # another real-time policy, the limit allows it
    assert (root.sched_getscheduler(), root.sched_getparam(), root.task_struct.prio) == (SCHED_RR, 10, 89)
    assert errno_of(lambda: root.sched_setparam(0, 11)) == EPERM
    root.sched_setparam(0, 5)  # lowering is free
    k.check()


def test_init_namespace_root_sets_real_time(init: forklab.TaskHandle) -> None:
    init.sched_setscheduler(0, SCHED_FIFO, 50)
    attr = init.sched_getattr()
    assert (attr.sched_policy, attr.sched_priority, attr.sched_runtime) == (SCHED_FIFO, 50, 0)
    assert (init.sched_getparam(), init.task_struct.prio) == (50, 49)
    init.sched_setattr(0, SCHED_NORMAL, nice=-5)
    assert (init.getpriority(PRIO_PROCESS), init.task_struct.prio, init.sched_getparam()) == (-5, 115, 0)


def test_lowering_nice_needs_rlimit_nice_or_cap_sys_nice(init: forklab.TaskHandle) -> None:
    init.setrlimit(RLIMIT_NICE, (25, 25))  # down to nice -5
    root = ns_root(init)
    root.setpriority(PRIO_PROCESS, 0, -5)
    assert errno_of(lambda: root.setpriority(PRIO_PROCESS, 0, -6)) == EACCES
    assert errno_of(lambda: root.sched_setattr(0, SCHED_NORMAL, nice=-6)) == EPERM
    root.setpriority(PRIO_PROCESS, 0, 100)  # clamped to 19; raising is always allowed
    assert root.getpriority(PRIO_PROCESS) == 19
    init.setpriority(PRIO_PROCESS, 0, -100)
    assert init.getpriority(PRIO_PROCESS) == -20


def test_nice_of_another_user(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    alice, bob = user(init, 1000), user(init, 1001)
    assert errno_of(lambda: alice.setpriority(PRIO_PROCESS, bob.pid, 5)) == EPERM
    assert errno_of(lambda: alice.sched_setscheduler(bob.pid, SCHED_BATCH, 0)) == EPERM
    init.setpriority(PRIO_PROCESS, bob.pid, 5)  # CAP_SYS_NICE over bob's namespace
    assert bob.getpriority(PRIO_PROCESS) == 5


def test_target_with_more_capabilities_is_eperm(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """cap_safe_nice: same uid, but the target holds capabilities the caller does not."""
    alice = user(init, 1000)
    privileged = k.task(init.fork())
    privileged.setresuid(1000, 0, 0)  # real uid alice's, capabilities kept
    assert errno_of(lambda: alice.setpriority(PRIO_PROCESS, privileged.pid, 5)) == EPERM
    assert errno_of(lambda: alice.sched_setscheduler(privileged.pid, SCHED_BATCH, 0)) == EPERM
    assert privileged.getpriority(PRIO_PROCESS) == 0


def test_setpriority_keeps_the_last_refusal(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """PRIO_USER over two tasks: the one that may be changed is, yet the call reports the other's
    refusal."""
    alice = user(init, 1000)
    privileged = k.task(init.fork())
    privileged.setresuid(1000, 0, 0)
    other = k.task(alice.fork())
    assert errno_of(lambda: alice.setpriority(PRIO_USER, 0, 7)) == EPERM
    assert (alice.getpriority(PRIO_PROCESS), other.getpriority(PRIO_PROCESS)) == (7, 7)
    assert privileged.getpriority(PRIO_PROCESS) == 0


# ---- argument checks, in the kernel's order ---------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "fields", "expected"),
    [
        (4, {}, EINVAL),  # no such policy
        (SCHED_EXT, {}, EINVAL),  # built without sched_ext
        (SCHED_NORMAL, {"flags": 0x80}, EINVAL),
        (SCHED_FIFO, {"priority": 100}, EINVAL),
        (SCHED_FIFO, {}, EINVAL),  # real-time needs 1..99
        (SCHED_BATCH, {"priority": 1}, EINVAL),  # the others need 0
        (SCHED_DEADLINE, {"runtime": MS}, EINVAL),  # no deadline
        (SCHED_DEADLINE, {"runtime": 1023, "deadline": MS}, EINVAL),  # below 1 us
        (SCHED_DEADLINE, {"runtime": MS, "deadline": 1 << 63}, EINVAL),
        (SCHED_DEADLINE, {"runtime": MS, "deadline": 2 * MS, "period": MS}, EINVAL),  # period < deadline
        (SCHED_DEADLINE, {"runtime": 2 * MS, "deadline": MS}, EINVAL),  # deadline < runtime
        (SCHED_DEADLINE, {"runtime": 2000, "deadline": 99_999}, EINVAL),  # period below 100 us
        (SCHED_DEADLINE, {"runtime": MS, "deadline": 5000 * MS}, EINVAL),  # period above about 4 s
        (SCHED_DEADLINE, {"runtime": MS, "deadline": 100_000}, EINVAL),  # runtime above the period
        (SCHED_DEADLINE, {"runtime": 1024, "deadline": 100_000}, EPERM),  # valid: then the permission
        (SCHED_NORMAL, {"flags": 0x10000000}, EINVAL),  # SCHED_FLAG_SUGOV, after the permission check
        (SCHED_NORMAL, {"flags": SCHED_FLAG_UTIL_CLAMP_MIN}, EOPNOTSUPP),  # no CONFIG_UCLAMP_TASK
        (SCHED_NORMAL, {"flags": SCHED_FLAG_UTIL_CLAMP_MAX, "size": 48}, EINVAL),  # clamps need VER1
        (SCHED_NORMAL, {"size": 47}, E2BIG),
        (SCHED_NORMAL, {"size": 4097}, E2BIG),
        (-1, {}, EINVAL),
    ],
)
def test_sched_setattr_checks(init: forklab.TaskHandle, policy: int, fields: dict[str, int], expected: int) -> None:
    root = ns_root(init)
    assert errno_of(lambda: root.sched_setattr(0, policy, **fields)) == expected


def test_permission_comes_after_priority_checks(init: forklab.TaskHandle) -> None:
    root = ns_root(init)
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_FIFO, 100)) == EINVAL
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_FIFO, -1)) == EINVAL  # a huge u32
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_FIFO, 1)) == EPERM


def test_pids(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    for call in (
        lambda: init.sched_setattr(-1, SCHED_NORMAL),
        lambda: init.sched_getattr(-1),
        lambda: init.sched_setscheduler(-1, SCHED_NORMAL, 0),
        lambda: init.sched_getscheduler(-1),
        lambda: init.sched_getparam(-1),
        lambda: init.sched_setparam(-1, 0),
        lambda: init.sched_setscheduler(0, -1, 0),
        lambda: init.setpriority(3, 0, 0),
        lambda: init.getpriority(-1, 0),
    ):
        assert errno_of(call) == EINVAL
    for call in (
        lambda: init.sched_setattr(999, SCHED_NORMAL),
        lambda: init.sched_getattr(999),
        lambda: init.sched_setscheduler(999, SCHED_NORMAL, 0),
        lambda: init.sched_getscheduler(999),
        lambda: init.sched_getparam(999),
        lambda: init.sched_setparam(999, 0),
        lambda: init.setpriority(PRIO_PROCESS, 999, 0),
        lambda: init.getpriority(PRIO_PROCESS, 999),
        lambda: init.getpriority(PRIO_PGRP, 999),
        lambda: init.getpriority(PRIO_USER, 4242),
        lambda: init.setpriority(PRIO_USER, 4242, 0),
    ):
        assert errno_of(call) == ESRCH


def test_pids_are_the_callers_namespace(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    inner = init.task(init.clone(CLONE_NEWPID | SIGCHLD))
    inner.setpriority(PRIO_PROCESS, 1, 3)  # itself, pid 1 there
    assert init.getpriority(PRIO_PROCESS, inner.pid) == 3
    assert errno_of(lambda: inner.getpriority(PRIO_PROCESS, inner.pid)) == ESRCH  # its outer number
    assert inner.getpriority(PRIO_USER, 0) == 3  # root's tasks it can see: init (nice 0) is not one
    assert init.getpriority(PRIO_USER, 0) == 0


# ---- the raw calls: user memory ---------------------------------------------------------------------


def test_raw_sched_setattr(init: forklab.TaskHandle) -> None:
    buf = init.mmap(8192)
    attr = struct.pack(SCHED_ATTR_LAYOUT, 47, SCHED_BATCH, 0, 4, 0, 0, 0, 0, 0, 0)
    init.poke(buf, attr)
    assert init.syscall("sched_setattr", 0, buf, 0) == -E2BIG
    assert init.read_u32(buf) == 56  # the size this kernel knows, for the caller to retry with
    init.poke(buf, struct.pack("<I", 64) + attr[4:] + bytes(7) + b"\x01")
    assert init.syscall("sched_setattr", 0, buf, 0) == -E2BIG  # a non-zero byte past the known fields
    init.poke(buf + 63, b"\x00")
    assert init.syscall("sched_setattr", 0, buf, 0) == 0
    assert init.sched_getattr()[1:4] == (SCHED_BATCH, 0, 4)
    init.write_u32(buf, 0)  # size 0: the first version, 48 bytes
    assert init.syscall("sched_setattr", 0, buf, 0) == 0
    assert init.syscall("sched_setattr", 0, buf, 1) == -EINVAL
    assert init.syscall("sched_setattr", 0, 0, 0) == -EINVAL
    assert init.syscall("sched_setattr", 0, 8, 0) == -EFAULT
    assert init.syscall("sched_setattr", -1, 8, 0) == -EINVAL  # before the copy
    init.poke(buf + 8192 - 4, struct.pack("<I", 56))
    assert init.syscall("sched_setattr", 0, buf + 8192 - 4, 0) == -EFAULT  # the struct runs off the map


def test_raw_sched_getattr(init: forklab.TaskHandle) -> None:
    init.setpriority(PRIO_PROCESS, 0, 3)
    buf = init.mmap(4096)
    init.poke(buf, b"\xff" * 64)
    assert init.syscall("sched_getattr", 0, buf, 48, 0) == 0
    assert struct.unpack_from("<IIQi", init.peek(buf, 20)) == (48, SCHED_NORMAL, 0, 3)
    assert init.peek(buf + 48, 16) == b"\xff" * 16  # only 48 bytes written
    assert init.syscall("sched_getattr", 0, buf, 47, 0) == -EINVAL
    assert init.syscall("sched_getattr", 0, buf, 4097, 0) == -EINVAL
    assert init.syscall("sched_getattr", 0, buf, 56, 1) == -EINVAL
    assert init.syscall("sched_getattr", 0, 0, 56, 0) == -EINVAL
    assert init.syscall("sched_getattr", 999, buf, 56, 0) == -ESRCH
    assert init.syscall("sched_getattr", 0, 8, 56, 0) == -EFAULT


def test_raw_setscheduler_and_params(init: forklab.TaskHandle) -> None:
    buf = init.mmap(4096)
    init.write_u32(buf, 30)
    assert init.syscall("sched_setscheduler", 0, SCHED_RR, buf) == 0
    assert init.syscall("sched_getscheduler", 0) == SCHED_RR
    assert init.syscall("sched_getparam", 0, buf + 8) == 0 and init.read_u32(buf + 8) == 30
    assert init.syscall("sched_getparam", 0, 0) == -EINVAL
    assert init.syscall("sched_getparam", 0, 8) == -EFAULT
    assert init.syscall("sched_setscheduler", 0, SCHED_RR, 0) == -EINVAL
    assert init.syscall("sched_setscheduler", 0, SCHED_RR, 8) == -EFAULT
    assert init.syscall("sched_setscheduler", 999, -1, 8) == -EINVAL  # the policy first
    assert init.syscall("sched_setscheduler", -1, SCHED_RR, 8) == -EINVAL  # the pid before the copy
    assert init.syscall("sched_setscheduler", 999, SCHED_RR, 8) == -EFAULT  # the copy before the lookup
    assert init.syscall("sched_setparam", 0, 8) == -EFAULT
    init.write_u32(buf, 31)
    assert init.syscall("sched_setparam", 0, buf) == 0 and init.sched_getparam() == 31
    assert init.syscall("setpriority", PRIO_PROCESS, 0, 4) == 0 and init.syscall("getpriority", PRIO_PROCESS, 0) == 16


# ---- what the calls change ------------------------------------------------------------------------------


def test_nice_of_a_real_time_task_waits(init: forklab.TaskHandle) -> None:
    init.sched_setscheduler(0, SCHED_FIFO, 10)
    init.setpriority(PRIO_PROCESS, 0, 7)
    assert (init.task_struct.prio, init.getpriority(PRIO_PROCESS)) == (89, 7)
    init.sched_setscheduler(0, SCHED_NORMAL, 0)  # the nice value kept for later applies now
    assert init.task_struct.prio == 127


def test_nice_is_per_thread(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    proc = k.task(init.fork())
    thread = proc.task(proc.clone(THREAD_FLAGS, stack=proc.mmap(65536) + 65536))
    proc.setpriority(PRIO_PROCESS, thread.pid_in(proc), 9)
    assert (proc.getpriority(PRIO_PROCESS), thread.getpriority(PRIO_PROCESS)) == (0, 9)
    proc.setpgid(0, 0)
    thread.setpriority(PRIO_PROCESS, 0, 12)
    proc.setpriority(PRIO_PROCESS, 0, 11)
    assert proc.getpriority(PRIO_PGRP) == 11  # the highest priority of the group's threads
    proc.setpriority(PRIO_PGRP, 0, 15)
    assert thread.getpriority(PRIO_PROCESS) == 15
    assert init.getpriority(PRIO_PGRP, proc.pid) == 15


def test_a_new_weight_keeps_the_runqueue_sums(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    task = child.task_struct
    rq = k.machine.rq[task.cpu]
    assert task.se.on_rq
    before = rq.cfs.sum_weight
    child.setpriority(PRIO_PROCESS, 0, 5)
    assert rq.cfs.sum_weight == before - 1024 + task.se.weight and task.se.weight == 335
    child.sched_setattr(0, SCHED_IDLE)
    assert task.se.weight == 3 and rq.cfs.sum_weight == before - 1024 + 3
    k.check()


def test_sched_idle(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """The nice value asked for sets the priority only; leaving SCHED_IDLE counts as nice 20."""
    init.setrlimit(RLIMIT_NICE, (20, 20))  # nice 0 and above
    root = ns_root(init)
    root.setpriority(PRIO_PROCESS, 0, 5)
    root.sched_setattr(0, SCHED_IDLE, nice=-20)
    task = root.task_struct
    assert (task.prio, task.static_prio, root.sched_getattr().sched_nice) == (100, 125, 5)
    child = k.task(root.fork())
    assert (child.sched_getscheduler(), child.task_struct.prio) == (SCHED_IDLE, 125)
    root.sched_setscheduler(0, SCHED_BATCH, 0)  # RLIMIT_NICE allows nice 5
    child.setrlimit(RLIMIT_NICE, (0, 0))
    assert errno_of(lambda: child.sched_setscheduler(0, SCHED_NORMAL, 0)) == EPERM


def test_keep_policy_and_keep_params(init: forklab.TaskHandle) -> None:
    init.sched_setattr(0, SCHED_IDLE, flags=SCHED_FLAG_KEEP_POLICY, nice=4)
    assert init.sched_getattr()[1:4] == (SCHED_NORMAL, 0, 4)
    init.sched_setattr(0, SCHED_BATCH, flags=SCHED_FLAG_KEEP_PARAMS | SCHED_FLAG_RESET_ON_FORK, nice=9)
    assert init.sched_getattr()[1:4] == (SCHED_NORMAL, SCHED_FLAG_RESET_ON_FORK, 4)


def test_custom_slice(init: forklab.TaskHandle) -> None:
    init.sched_setattr(0, SCHED_BATCH, runtime=5 * MS)
    assert init.sched_getattr().sched_runtime == 5 * MS
    init.sched_setscheduler(0, SCHED_NORMAL, 0)  # keeps the slice
    assert init.sched_getattr().sched_runtime == 5 * MS
    init.sched_setattr(0, SCHED_NORMAL, runtime=1)
    assert init.sched_getattr().sched_runtime == MS // 10
    init.sched_setattr(0, SCHED_NORMAL, runtime=MS * 1000)
    assert init.sched_getattr().sched_runtime == 100 * MS
    init.sched_setattr(0, SCHED_NORMAL)
    assert init.sched_getattr().sched_runtime == BASE_SLICE


# ---- reset-on-fork and sched_fork -------------------------------------------------------------------------


def test_clearing_reset_on_fork_needs_privilege(init: forklab.TaskHandle) -> None:
    root = ns_root(init)
    root.sched_setscheduler(0, SCHED_BATCH | SCHED_RESET_ON_FORK, 0)
    assert root.sched_getscheduler() == SCHED_BATCH | SCHED_RESET_ON_FORK
    assert root.sched_getattr().sched_flags == SCHED_FLAG_RESET_ON_FORK
    assert errno_of(lambda: root.sched_setscheduler(0, SCHED_BATCH, 0)) == EPERM
    root.sched_setparam(0, 0)  # sched_setparam keeps the flag
    assert root.sched_getscheduler() == SCHED_BATCH | SCHED_RESET_ON_FORK
    init.sched_setscheduler(0, SCHED_NORMAL | SCHED_RESET_ON_FORK, 0)
    init.sched_setscheduler(0, SCHED_NORMAL, 0)  # privileged: allowed
    assert init.sched_getscheduler() == SCHED_NORMAL


def test_reset_on_fork_of_a_real_time_parent(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.setpriority(PRIO_PROCESS, 0, -5)
    init.sched_setattr(0, SCHED_FIFO, flags=SCHED_FLAG_RESET_ON_FORK, priority=40)
    child = k.task(init.fork())
    assert child.sched_getattr() == SchedAttr(sched_runtime=BASE_SLICE)
    assert (child.task_struct.prio, child.task_struct.se.weight) == (120, 1024)
    assert init.sched_getscheduler() == SCHED_FIFO | SCHED_RESET_ON_FORK


def test_reset_on_fork_of_a_fair_parent(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.sched_setattr(0, SCHED_BATCH, flags=SCHED_FLAG_RESET_ON_FORK, nice=-5, runtime=5 * MS)
    child = k.task(init.fork())
    assert child.sched_getattr()[1:6] == (SCHED_BATCH, 0, 0, 0, BASE_SLICE)  # negative nice back to 0
    init.sched_setattr(0, SCHED_BATCH, flags=SCHED_FLAG_RESET_ON_FORK, nice=6)
    assert k.task(init.fork()).sched_getattr()[1:4] == (SCHED_BATCH, 0, 6)  # a positive nice stays


def test_without_reset_on_fork_the_child_inherits(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    init.sched_setattr(0, SCHED_RR, priority=20)
    rt_child = k.task(init.fork())
    assert (rt_child.sched_getscheduler(), rt_child.sched_getparam(), rt_child.task_struct.prio) == (SCHED_RR, 20, 79)
    init.sched_setattr(0, SCHED_NORMAL, nice=-3, runtime=5 * MS)
    child = k.task(init.fork())
    assert child.sched_getattr()[1:6] == (SCHED_NORMAL, 0, -3, 0, 5 * MS)
    assert "prio=117" in [line for line in k.trace_text().splitlines() if "wakeup_new" in line][-1]


# ---- SCHED_DEADLINE -------------------------------------------------------------------------------

DL_LIMIT = 996_147  # to_ratio(1 s, 0.95 s): what deadline tasks may take of each CPU, in 2**-20
HALF = 524_288  # to_ratio(30 ms, 15 ms)
BW_PERIOD = 1 << 20  # with this period (about 1 ms) a task's bandwidth is its runtime in ns
SERVERS = 2 * 52_428  # each CPU's fair server: to_ratio(1 s, 50 ms)


def dl_bw(k: forklab.Kernel) -> int:
    """What deadline tasks hold: the root domain's total less the fair servers'."""
    return int(k.machine.dl_bw.total_bw) - SERVERS


def deadline_child(k: forklab.Kernel, init: forklab.TaskHandle, runtime: int, period: int, flags: int = 0) -> int:
    """A new child of init made SCHED_DEADLINE by init (root in the initial user namespace);
    returns the errno of the sched_setattr, 0 when it was admitted."""
    pid = init.fork()
    try:
        init.sched_setattr(pid, SCHED_DEADLINE, flags=flags, runtime=runtime, deadline=period, period=period)
    except SyscallError as err:
        return int(err.errno)
    return 0


def test_deadline_parameters_are_kept_and_reported(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    child = k.task(init.fork())
    child.sched_setattr(0, SCHED_DEADLINE, runtime=10 * MS, deadline=30 * MS, period=30 * MS)
    attr = child.sched_getattr()
    assert (attr.sched_policy, attr.sched_priority, attr.sched_nice) == (SCHED_DEADLINE, 0, 0)
    assert (attr.sched_runtime, attr.sched_deadline, attr.sched_period) == (10 * MS, 30 * MS, 30 * MS)
    assert (child.sched_getscheduler(), child.sched_getparam(), child.task_struct.prio) == (SCHED_DEADLINE, 0, -1)
    assert dl_bw(k) == (10 * MS << 20) // (30 * MS)
    child.sched_setattr(0, SCHED_DEADLINE, runtime=MS, deadline=10 * MS)  # no period: the deadline
    assert child.sched_getattr()[5:8] == (MS, 10 * MS, 10 * MS)
    assert dl_bw(k) == (MS << 20) // (10 * MS)
    child.sched_setattr(0, SCHED_DEADLINE, flags=SCHED_FLAG_KEEP_PARAMS)
    assert child.sched_getattr()[5:8] == (MS, 10 * MS, 10 * MS)
    child.sched_setattr(0, SCHED_DEADLINE, flags=SCHED_FLAG_DL_OVERRUN, runtime=MS, deadline=10 * MS, period=10 * MS)
    assert child.sched_getattr().sched_flags == SCHED_FLAG_DL_OVERRUN  # a change of the flags alone counts
    k.check()


def test_a_deadline_parent_forks_only_with_reset_on_fork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    parent = k.task(init.fork())
    parent.sched_setattr(0, SCHED_DEADLINE, runtime=10 * MS, deadline=30 * MS)
    held = dl_bw(k)
    assert errno_of(parent.fork) == EAGAIN
    parent.sched_setattr(0, SCHED_DEADLINE, flags=SCHED_FLAG_RESET_ON_FORK, runtime=10 * MS, deadline=30 * MS)
    child = k.task(parent.fork())
    assert (child.sched_getscheduler(), child.task_struct.prio) == (SCHED_NORMAL, 120)
    assert child.sched_getattr()[5:8] == (BASE_SLICE, 0, 0)
    assert (child.task_struct.dl.dl_bw, dl_bw(k)) == (0, held)  # the child is charged nothing
    k.check()


def test_admission_stops_at_95_percent_of_the_cpus(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """Two CPUs: deadline tasks and fair servers may hold 2 * DL_LIMIT; three halves fit, a
    fourth does not. The host's 6.18 refuses and admits at the same runtimes."""
    assert [deadline_child(k, init, 15 * MS, 30 * MS) for _ in range(4)] == [0, 0, 0, EBUSY]
    room = 2 * DL_LIMIT - SERVERS - 3 * HALF
    assert deadline_child(k, init, room + 1, BW_PERIOD) == EBUSY
    assert dl_bw(k) == 3 * HALF
    assert deadline_child(k, init, room, BW_PERIOD) == 0
    assert deadline_child(k, init, 1024, BW_PERIOD) == EBUSY
    assert dl_bw(k) == 2 * DL_LIMIT - SERVERS
    k.check()


def test_before_the_fair_servers_deadline_tasks_had_every_cpu_to_themselves() -> None:
    k = forklab.boot(version="6.6")
    init = k.task(1)
    assert [deadline_child(k, init, 15 * MS, 30 * MS) for _ in range(3)] == [0, 0, 0]
    room = 2 * DL_LIMIT - 3 * HALF
    assert deadline_child(k, init, room + 1, BW_PERIOD) == EBUSY
    assert deadline_child(k, init, room, BW_PERIOD) == 0
    assert k.machine.dl_bw.total_bw == 2 * DL_LIMIT
    k.check()


def test_a_deadline_task_changing_its_parameters_is_admitted_again(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    assert [deadline_child(k, init, 15 * MS, 30 * MS) for _ in range(2)] == [0, 0]
    child = k.task(init.fork())
    child.sched_setattr(0, SCHED_DEADLINE, runtime=15 * MS, deadline=30 * MS)
    # Its own half is given back before the new share is counted.
    room = 2 * DL_LIMIT - SERVERS - 2 * HALF
    assert errno_of(lambda: child.sched_setattr(0, SCHED_DEADLINE, runtime=room + 1, deadline=BW_PERIOD)) == EBUSY
    assert child.sched_getattr()[5:8] == (15 * MS, 30 * MS, 30 * MS)
    assert dl_bw(k) == 3 * HALF
    child.sched_setattr(0, SCHED_DEADLINE, runtime=room, deadline=BW_PERIOD)
    assert dl_bw(k) == 2 * DL_LIMIT - SERVERS
    k.check()


@pytest.mark.parametrize("release", ["exit", "reap", "normal"])
def test_bandwidth_returns_when_a_deadline_task_dies_or_leaves(
    k: forklab.Kernel, init: forklab.TaskHandle, release: str
) -> None:
    pids = [init.fork() for _ in range(4)]
    for pid in pids[:3]:
        init.sched_setattr(pid, SCHED_DEADLINE, runtime=15 * MS, deadline=30 * MS)
    assert errno_of(lambda: init.sched_setattr(pids[3], SCHED_DEADLINE, runtime=15 * MS, deadline=30 * MS)) == EBUSY
    leaver = k.task(pids[0])
    if release == "normal":
        leaver.sched_setscheduler(0, SCHED_NORMAL, 0)
        assert leaver.sched_getattr()[1:3] == (SCHED_NORMAL, 0)
        assert leaver.sched_getattr()[6:8] == (0, 0)
    else:
        leaver.exit(0)  # the zombie holds no bandwidth
        if release == "reap":
            assert init.wait4(pids[0]) == (pids[0], 0)
    assert dl_bw(k) == 2 * HALF
    k.check()
    init.sched_setattr(pids[3], SCHED_DEADLINE, runtime=15 * MS, deadline=30 * MS)
    assert dl_bw(k) == 3 * HALF
    k.check()


def test_check_catches_unaccounted_deadline_bandwidth(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    assert deadline_child(k, init, 15 * MS, 30 * MS) == 0
    k.machine.dl_bw.total_bw -= 1
    with pytest.raises(KernelBug, match="live deadline tasks hold 629144"):
        k.check()
