"""kernel/sched/syscalls.c: set_user_nice and the scheduling system calls (sched_setattr,
sched_setscheduler, sched_setparam, their getters, sched_get_priority_max/min).

A user pointer reaches these functions as a reader (``UserIn``): None for NULL, else a
function that copies the value in (and may fail with EFAULT) when the kernel would.

The model's kernel is configured as the host's: no CONFIG_UCLAMP_TASK (utilization clamps
fail with EOPNOTSUPP) and no CONFIG_SCHED_CLASS_EXT. It has no cpu-controller cgroups (so
RT_GROUP_SCHED never refuses) and no priority-inheritance boosts; no task has an affinity mask
narrower than the root domain, so a deadline task is never refused for one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, TypeVar

from forklab.kernel.cred import capable, ns_capable
from forklab.kernel.errors import KernelError
from forklab.kernel.mm.mm import copy_struct_from_user, get_user_u32, put_user_u32
from forklab.kernel.pid import find_task_by_pid_ns
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.sched.core import (
    MAX_NICE,
    MAX_RT_PRIO,
    MIN_NICE,
    __normal_prio,
    dl_policy,
    fair_policy,
    idle_policy,
    nice_to_prio,
    normal_prio,
    requeued,
    rt_policy,
    rt_prio,
    set_load_weight,
    task_nice,
    valid_policy,
)
from forklab.kernel.sched.deadline import (
    SCHED_FLAG_SUGOV,
    __checkparam_dl,
    __getparam_dl,
    __setparam_dl,
    dl_param_changed,
    sched_dl_overflow,
    switched_from_dl,
)
from forklab.kernel.sched.fair import sched_base_slice
from forklab.kernel.version import Behaviour
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_SYS_NICE
from forklab.uapi.resource import RLIMIT_NICE, RLIMIT_RTPRIO
from forklab.uapi.sched import (
    SCHED_ATTR_LAYOUT,
    SCHED_ATTR_SIZE_VER0,
    SCHED_ATTR_SIZE_VER1,
    SCHED_BATCH,
    SCHED_DEADLINE,
    SCHED_EXT,
    SCHED_FLAG_ALL,
    SCHED_FLAG_KEEP_PARAMS,
    SCHED_FLAG_KEEP_POLICY,
    SCHED_FLAG_RESET_ON_FORK,
    SCHED_FLAG_UTIL_CLAMP,
    SCHED_IDLE,
    SCHED_NORMAL,
    SCHED_RESET_ON_FORK,
    SchedAttr,
)

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

T = TypeVar("T")
UserIn = Callable[[], T] | None

SETPARAM_POLICY = -1  # sched_setparam and SCHED_FLAG_KEEP_POLICY: keep the task's policy
PAGE_SIZE = 4096
NSEC_PER_MSEC = 1_000_000
# A fair task's requested slice is clamped to 0.1 ms .. 100 ms.
MIN_CUSTOM_SLICE = NSEC_PER_MSEC // 10
MAX_CUSTOM_SLICE = NSEC_PER_MSEC * 100


# ---- nice ----------------------------------------------------------------------------------------


def nice_to_rlimit(nice: int) -> int:
    """Nice 19..-20 as RLIMIT_NICE counts it, 1..40."""
    return MAX_NICE - nice + 1


def is_nice_reduction(p: Task, nice: int) -> bool:
    """Does the target's own RLIMIT_NICE allow this nice value."""
    return nice_to_rlimit(nice) <= p.signal.rlim[RLIMIT_NICE][0]


def can_nice(k: Machine, current: Task, p: Task, nice: int) -> bool:
    return is_nice_reduction(p, nice) or capable(k, current, CAP_SYS_NICE)


def effective_prio(p: Task) -> int:
    p.normal_prio = normal_prio(p)
    return p.prio if rt_prio(p.prio) else p.normal_prio


def set_user_nice(k: Machine, p: Task, nice: int) -> None:
    """A new nice value; a real-time or deadline task only keeps it for later."""
    if task_nice(p) == nice or not MIN_NICE <= nice <= MAX_NICE:
        return
    if dl_policy(p.policy) or rt_policy(p.policy):
        p.static_prio = nice_to_prio(nice)
        return
    with requeued(k, p):
        p.static_prio = nice_to_prio(nice)
        set_load_weight(p)
    p.prio = effective_prio(p)


def cap_safe_nice(current: Task, p: Task, call: str) -> None:
    """The capability module's setnice/setscheduler hook: a target with permitted capabilities
    the caller lacks needs CAP_SYS_NICE over the target's user namespace."""
    pcred = p.real_cred
    if pcred.cap_permitted & ~current.cred.cap_permitted and not ns_capable(current, pcred.user_ns, CAP_SYS_NICE):
        raise KernelError(E.EPERM, f"{call}: the target has capabilities the caller lacks (cap_safe_nice)")


# ---- finding the task ----------------------------------------------------------------------------


def find_process_by_pid(current: Task, pid: int) -> Task | None:
    """0 is the caller; any other number a thread id in the caller's pid namespace."""
    return current if not pid else find_task_by_pid_ns(pid, task_active_pid_ns(current))


def find_get_task(current: Task, pid: int, call: str) -> Task:
    p = find_process_by_pid(current, pid)
    if p is None:
        raise KernelError(E.ESRCH, f"{call}: no task {pid} in the caller's pid namespace")
    return p


# ---- __sched_setscheduler ------------------------------------------------------------------------


def check_same_owner(current: Task, p: Task) -> bool:
    cred, pcred = current.cred, p.real_cred
    return cred.euid in (pcred.euid, pcred.uid)


def unprivileged_refusal(current: Task, p: Task, attr: SchedAttr, policy: int, reset_on_fork: bool) -> str | None:
    """What an unprivileged caller may not do here (user_check_sched_setscheduler), or None."""
    if fair_policy(policy) and attr.sched_nice < task_nice(p) and not is_nice_reduction(p, attr.sched_nice):
        return "a nice value below what RLIMIT_NICE allows"
    if rt_policy(policy):
        rlim_rtprio = p.signal.rlim[RLIMIT_RTPRIO][0]
        if policy != p.policy and not rlim_rtprio:
            return "a real-time policy with RLIMIT_RTPRIO 0"
        if attr.sched_priority > p.rt_priority and attr.sched_priority > rlim_rtprio:
            return "a real-time priority above RLIMIT_RTPRIO"
    if dl_policy(policy):
        return "SCHED_DEADLINE"
    if idle_policy(p.policy) and not idle_policy(policy) and not is_nice_reduction(p, task_nice(p)):
        return "leaving SCHED_IDLE (counted as nice 20 against RLIMIT_NICE)"
    if not check_same_owner(current, p):
        return "changing another user's task"
    if p.sched_reset_on_fork and not reset_on_fork:
        return "clearing SCHED_RESET_ON_FORK"
    return None


def params_changed(k: Machine, p: Task, policy: int, attr: SchedAttr) -> bool:
    """Would a call that keeps the policy change anything (besides reset-on-fork)."""
    if fair_policy(policy):
        slice_changed = k.has(Behaviour.FAIR_CUSTOM_SLICE) and attr.sched_runtime != p.se.slice
        return attr.sched_nice != task_nice(p) or slice_changed
    if rt_policy(policy):
        return attr.sched_priority != p.rt_priority
    return dl_policy(policy) and dl_param_changed(p, attr)


def __setscheduler_params(k: Machine, p: Task, policy: int, attr: SchedAttr) -> None:
    p.policy = policy
    if dl_policy(policy):
        __setparam_dl(p, attr)
    elif fair_policy(policy):
        p.static_prio = nice_to_prio(attr.sched_nice)
        if k.has(Behaviour.FAIR_CUSTOM_SLICE):
            runtime = attr.sched_runtime
            p.se.slice = min(max(runtime, MIN_CUSTOM_SLICE), MAX_CUSTOM_SLICE) if runtime else sched_base_slice(k)
    # Always set, so that a fair task never reports a stale real-time priority.
    p.rt_priority = attr.sched_priority
    p.normal_prio = normal_prio(p)
    set_load_weight(p)


def __sched_setscheduler(k: Machine, current: Task, p: Task, attr: SchedAttr) -> None:
    """The checks in the kernel's order, then the change. A SCHED_IDLE task takes its prio from
    the nice value asked for while its static priority keeps the old one, as the kernel does."""
    policy = attr.sched_policy
    if policy < 0:
        reset_on_fork = p.sched_reset_on_fork
        policy = p.policy
    else:
        reset_on_fork = bool(attr.sched_flags & SCHED_FLAG_RESET_ON_FORK)
        if not valid_policy(policy):
            raise KernelError(E.EINVAL, f"sched_setscheduler: policy {policy} does not exist")
    if attr.sched_flags & ~(SCHED_FLAG_ALL | SCHED_FLAG_SUGOV):
        raise KernelError(E.EINVAL, f"sched_setattr: unknown flags {attr.sched_flags:#x}")
    if attr.sched_priority > MAX_RT_PRIO - 1:
        raise KernelError(E.EINVAL, f"sched_setscheduler: priority {attr.sched_priority} above 99")
    if dl_policy(policy) and not __checkparam_dl(attr):
        raise KernelError(E.EINVAL, "sched_setattr: SCHED_DEADLINE runtime, deadline and period out of order")
    if rt_policy(policy) != (attr.sched_priority != 0):
        raise KernelError(E.EINVAL, "sched_setscheduler: priority 1..99 is for SCHED_FIFO/RR only, 0 for the rest")
    refusal = unprivileged_refusal(current, p, attr, policy, reset_on_fork)
    if refusal is not None and not capable(k, current, CAP_SYS_NICE):
        raise KernelError(E.EPERM, f"sched_setscheduler: {refusal} needs CAP_SYS_NICE in the initial user namespace")
    if attr.sched_flags & SCHED_FLAG_SUGOV:
        raise KernelError(E.EINVAL, "sched_setattr: SCHED_FLAG_SUGOV is the kernel's own")
    cap_safe_nice(current, p, "sched_setscheduler")
    if attr.sched_flags & SCHED_FLAG_UTIL_CLAMP:
        raise KernelError(E.EOPNOTSUPP, "sched_setattr: utilization clamps need CONFIG_UCLAMP_TASK")
    if policy == p.policy and not params_changed(k, p, policy, attr):
        p.sched_reset_on_fork = reset_on_fork
        return
    if dl_policy(policy) and sched_dl_overflow(k, p, attr):
        raise KernelError(E.EBUSY, "sched_setattr: not enough SCHED_DEADLINE bandwidth left (sched_dl_overflow)")
    p.sched_reset_on_fork = reset_on_fork
    if attr.sched_flags & SCHED_FLAG_KEEP_PARAMS:
        return
    left_dl = dl_policy(p.policy) and not dl_policy(policy)
    with requeued(k, p):
        __setscheduler_params(k, p, policy, attr)
    p.prio = __normal_prio(policy, attr.sched_priority, attr.sched_nice)
    if left_dl:  # check_class_changed
        switched_from_dl(k, p)


def _sched_setscheduler(k: Machine, current: Task, p: Task, policy: int, priority: int) -> None:
    """sched_setscheduler and sched_setparam: the nice value and slice stay; the policy's
    SCHED_RESET_ON_FORK bit becomes the flag."""
    attr = SchedAttr(
        sched_policy=policy, sched_priority=priority & 0xFFFFFFFF, sched_nice=task_nice(p), sched_runtime=p.se.slice
    )
    if policy != SETPARAM_POLICY and policy & SCHED_RESET_ON_FORK:
        attr = attr._replace(sched_flags=SCHED_FLAG_RESET_ON_FORK, sched_policy=policy & ~SCHED_RESET_ON_FORK)
    __sched_setscheduler(k, current, p, attr)


def do_sched_setscheduler(k: Machine, current: Task, pid: int, policy: int, param: UserIn[int]) -> None:
    if param is None or pid < 0:
        raise KernelError(E.EINVAL, "sched_setscheduler: NULL param or negative pid")
    priority = param()
    p = find_get_task(current, pid, "sched_setscheduler")
    _sched_setscheduler(k, current, p, policy, priority)


def sys_sched_setscheduler(k: Machine, current: Task, pid: int, policy: int, param: UserIn[int]) -> None:
    if policy < 0:
        raise KernelError(E.EINVAL, "sched_setscheduler: negative policy")
    do_sched_setscheduler(k, current, pid, policy, param)


def sys_sched_setparam(k: Machine, current: Task, pid: int, param: UserIn[int]) -> None:
    do_sched_setscheduler(k, current, pid, SETPARAM_POLICY, param)


# ---- sched_setattr -------------------------------------------------------------------------------


def sched_attr_from(size: int, fetch: Callable[[int], bytes]) -> SchedAttr:
    """sched_copy_attr() once the size is read: ``fetch(usize)`` copies the struct in (as
    copy_struct_from_user, into the kernel's 56 bytes). Size 0 means the first version."""
    usize = size or SCHED_ATTR_SIZE_VER0
    if not SCHED_ATTR_SIZE_VER0 <= usize <= PAGE_SIZE:
        raise KernelError(E.E2BIG, f"sched_setattr: size {size} outside {SCHED_ATTR_SIZE_VER0}..{PAGE_SIZE}")
    attr = SchedAttr._make(struct.unpack(SCHED_ATTR_LAYOUT, fetch(usize)))
    if attr.sched_flags & SCHED_FLAG_UTIL_CLAMP and usize < SCHED_ATTR_SIZE_VER1:
        raise KernelError(E.EINVAL, "sched_setattr: utilization clamps need the VER1 struct (56 bytes)")
    return attr._replace(sched_nice=min(max(attr.sched_nice, MIN_NICE), MAX_NICE))


def sched_copy_attr(current: Task, uattr: int) -> SchedAttr:
    """struct sched_attr from user memory. On E2BIG the kernel writes the size it knows into
    the caller's struct, so that user space can retry; a failure of that write goes unreported."""
    mm = current.mm
    size = get_user_u32(mm, uattr)
    try:
        return sched_attr_from(size, lambda usize: copy_struct_from_user(mm, uattr, SCHED_ATTR_SIZE_VER1, usize))
    except KernelError as err:
        if err.errno == E.E2BIG:
            with suppress(KernelError):
                put_user_u32(mm, uattr, SCHED_ATTR_SIZE_VER1)
        raise


def get_params(k: Machine, p: Task, attr: SchedAttr) -> SchedAttr:
    """The task's own parameters, for SCHED_FLAG_KEEP_PARAMS and sched_getattr."""
    if dl_policy(p.policy):
        return __getparam_dl(p, attr)
    if rt_policy(p.policy):
        return attr._replace(sched_priority=p.rt_priority)
    runtime = p.se.slice if k.has(Behaviour.FAIR_CUSTOM_SLICE) else 0
    return attr._replace(sched_nice=task_nice(p), sched_runtime=runtime)


def sys_sched_setattr(k: Machine, current: Task, pid: int, uattr: UserIn[SchedAttr], flags: int) -> None:
    if uattr is None or pid < 0 or flags:
        raise KernelError(E.EINVAL, "sched_setattr: NULL attr, negative pid or non-zero flags")
    attr = uattr()
    if attr.sched_policy >= 1 << 31:
        raise KernelError(E.EINVAL, "sched_setattr: negative policy")
    if attr.sched_flags & SCHED_FLAG_KEEP_POLICY:
        attr = attr._replace(sched_policy=SETPARAM_POLICY)
    p = find_get_task(current, pid, "sched_setattr")
    if attr.sched_flags & SCHED_FLAG_KEEP_PARAMS:
        attr = get_params(k, p, attr)
    __sched_setscheduler(k, current, p, attr)


# ---- the getters ---------------------------------------------------------------------------------


def sys_sched_getscheduler(k: Machine, current: Task, pid: int) -> int:
    if pid < 0:
        raise KernelError(E.EINVAL, "sched_getscheduler: negative pid")
    p = find_get_task(current, pid, "sched_getscheduler")
    return p.policy | (SCHED_RESET_ON_FORK if p.sched_reset_on_fork else 0)


def sys_sched_getparam(k: Machine, current: Task, pid: int) -> int:
    """The real-time priority (0 for any other policy); the caller copies it out."""
    if pid < 0:
        raise KernelError(E.EINVAL, "sched_getparam: negative pid")
    p = find_get_task(current, pid, "sched_getparam")
    return p.rt_priority if rt_policy(p.policy) else 0


def sys_sched_getattr(k: Machine, current: Task, pid: int, usize: int, flags: int) -> SchedAttr:
    """The attributes, ``size`` being how many bytes of them reach user space."""
    if pid < 0 or not SCHED_ATTR_SIZE_VER0 <= usize <= PAGE_SIZE or flags:
        raise KernelError(E.EINVAL, "sched_getattr: negative pid, size outside 48..4096 or non-zero flags")
    p = find_get_task(current, pid, "sched_getattr")
    reset = SCHED_FLAG_RESET_ON_FORK if p.sched_reset_on_fork else 0
    kattr = get_params(k, p, SchedAttr(size=min(usize, SCHED_ATTR_SIZE_VER1), sched_policy=p.policy, sched_flags=reset))
    return kattr._replace(sched_flags=kattr.sched_flags & SCHED_FLAG_ALL)


def sys_sched_get_priority_max(k: Machine, current: Task, policy: int) -> int:
    return priority_bound(k, policy, MAX_RT_PRIO - 1)


def sys_sched_get_priority_min(k: Machine, current: Task, policy: int) -> int:
    return priority_bound(k, policy, 1)


def priority_bound(k: Machine, policy: int, rt_bound: int) -> int:
    """A real-time policy's bound, 0 for the others; SCHED_EXT's number is known even to a
    kernel built without it, since sched_ext was merged."""
    if rt_policy(policy):
        return rt_bound
    if policy in (SCHED_DEADLINE, SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE):
        return 0
    if policy == SCHED_EXT and k.has(Behaviour.SCHED_EXT_PRIORITY_RANGE):
        return 0
    raise KernelError(E.EINVAL, f"sched_get_priority_max/min: policy {policy} does not exist")
