"""kernel/fork.c: making a new task.

Read this file beside the kernel's kernel/fork.c. The entry points (fork, vfork, clone,
clone3, kernel_thread, user_mode_thread) fill a ``KernelCloneArgs`` and call
``kernel_clone``, which calls ``copy_process`` and then wakes the child. ``copy_process``
runs the kernel's checks and copies in the kernel's order. When a step fails, it names the
``bad_fork_*`` label the kernel jumps to, and ``unwind`` runs that label's undo and every
label below it, in source order, exactly like the C code falling through its labels.

``ksys_unshare`` lives here too, as in the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.cgroup.cgroup import CssSet, cgroup_can_fork, cgroup_cancel_fork, cgroup_fork, cgroup_post_fork
from forklab.kernel.cred import (
    commit_creds,
    copy_creds,
    exit_creds,
    nproc_over_limit,
    ns_capable,
    prepare_creds,
    put_cred,
    set_cred_ucounts,
    uncharge_nproc,
)
from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.fs.file import (
    File,
    FilesStruct,
    copy_files,
    dup_fd,
    exit_files,
    fd_install,
    fput,
    put_files_struct,
    put_unused_fd,
)
from forklab.kernel.fs.fs_struct import copy_fs, copy_fs_struct, exit_fs, free_fs_struct
from forklab.kernel.ftrace import traced
from forklab.kernel.futex import futex_hash_allocate_default
from forklab.kernel.ipc import copy_semundo, exit_sem
from forklab.kernel.mm.mm import (
    MMF_MULTIPROCESS,
    TASK_SIZE,
    access_ok,
    copy_from_user,
    copy_mm,
    copy_struct_from_user,
    mmput,
    put_user_u32,
)
from forklab.kernel.nsproxy import (
    Nsproxy,
    copy_namespaces,
    create_new_namespaces,
    exit_nsproxy_namespaces,
    put_nsproxy,
    switch_task_namespaces,
)
from forklab.kernel.pid import (
    PIDTYPE_PGID,
    PIDTYPE_PID,
    PIDTYPE_SID,
    PIDTYPE_TGID,
    Pid,
    alloc_pid,
    attach_pid,
    free_pid,
    get_pid,
    is_child_reaper,
    pid_nr,
    pid_nr_ns,
    put_pid,
    set_task_pid_ptr,
)
from forklab.kernel.pid_namespace import MAX_PID_NS_LEVEL, PIDNS_ADDING, task_active_pid_ns
from forklab.kernel.pidfd import __pidfd_prepare
from forklab.kernel.ptrace import (
    PTRACE_EVENT_CLONE,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_VFORK,
    PTRACE_EVENT_VFORK_DONE,
    ptrace_event_enabled,
    ptrace_event_pid,
    ptrace_init_task,
)
from forklab.kernel.sched.core import sched_cgroup_fork, sched_fork, wake_up_new_task
from forklab.kernel.signal import (
    SIGNAL_UNKILLABLE,
    SigPending,
    calculate_sigpending,
    cleanup_sighand,
    copy_sighand,
    copy_signal,
    fatal_signal_pending,
    free_signal_struct,
    put_signal_struct,
    recalc_sigpending,
    task_join_group_stop,
    task_sigpending,
)
from forklab.kernel.task import (
    PF_FORKNOEXEC,
    PF_IDLE,
    PF_IO_WORKER,
    PF_KTHREAD,
    PF_NO_SETAFFINITY,
    PF_NPROC_EXCEEDED,
    PF_SUPERPRIV,
    PF_USER_WORKER,
    PF_WQ_WORKER,
    TASK_COMM_LEN,
    TASK_DEAD,
    TASK_KILLABLE,
    PtRegs,
    Task,
    ThreadStruct,
)
from forklab.kernel.trace import trace_sched_process_fork, trace_sched_process_free, trace_task_newtask
from forklab.kernel.user_namespace import create_user_ns
from forklab.kernel.version import Behaviour
from forklab.kernel.wait import Completion
from forklab.uapi import errno as E
from forklab.uapi.capability import CAP_SYS_ADMIN
from forklab.uapi.pidfd import PIDFD_THREAD
from forklab.uapi.sched import (
    CLONE_ARGS_FIELDS,
    CLONE_ARGS_SIZE_VER0,
    CLONE_ARGS_SIZE_VER2,
    CLONE_CHILD_CLEARTID,
    CLONE_CHILD_SETTID,
    CLONE_CLEAR_SIGHAND,
    CLONE_DETACHED,
    CLONE_FILES,
    CLONE_FS,
    CLONE_INTO_CGROUP,
    CLONE_IO,
    CLONE_LEGACY_FLAGS,
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_NS_FLAGS,
    CLONE_PARENT,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_PTRACE,
    CLONE_SETTLS,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_UNTRACED,
    CLONE_VFORK,
    CLONE_VM,
    CSIGNAL,
)
from forklab.uapi.signal import SIGCHLD, valid_signal

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine

PAGE_SIZE = 4096
INT_MAX = (1 << 31) - 1
PIDFD_NONBLOCK = 0o4000  # O_NONBLOCK
# The task_struct size that an idle task shares (fork_idle passes &init_struct_pid).
INIT_STRUCT_PID = object()


class KernelCloneArgs:
    """struct kernel_clone_args: everything one clone needs, from whichever entry point."""

    __slots__ = (
        "cgroup",
        "child_tid",
        "cset",
        "exit_signal",
        "flags",
        "fn",
        "fn_arg",
        "idle",
        "io_thread",
        "kthread",
        "name",
        "no_files",
        "parent_tid",
        "pidfd",
        "set_tid",
        "stack",
        "stack_size",
        "tls",
        "user_worker",
    )

    def __init__(
        self,
        flags: int = 0,
        exit_signal: int = 0,
        *,
        pidfd: int = 0,
        child_tid: int = 0,
        parent_tid: int = 0,
        stack: int = 0,
        stack_size: int = 0,
        tls: int = 0,
        set_tid: tuple[int, ...] = (),
        cgroup: int = 0,
        fn: Callable[..., object] | None = None,
        fn_arg: object = None,
        name: str | None = None,
        kthread: bool = False,
    ) -> None:
        self.flags = flags
        self.exit_signal = exit_signal
        self.pidfd = pidfd
        self.child_tid = child_tid
        self.parent_tid = parent_tid
        self.stack = stack
        self.stack_size = stack_size
        self.tls = tls
        self.set_tid = set_tid
        self.cgroup = cgroup
        self.cset: CssSet | None = None
        self.fn = fn
        self.fn_arg = fn_arg
        self.name = name
        self.kthread = kthread
        self.io_thread = False
        self.user_worker = False
        self.no_files = False
        self.idle = False


class ForkState:
    """The locals of copy_process that its unwinding reads."""

    __slots__ = ("args", "clone_flags", "delayed", "p", "pid", "pidfd", "pidfile")

    def __init__(self, args: KernelCloneArgs, delayed: SigPending) -> None:
        self.args = args
        self.clone_flags = args.flags
        self.delayed = delayed
        self.p: Task | None = None
        self.pid: Pid | None = None
        self.pidfd = -1
        self.pidfile: File | None = None


# ---- the bad_fork_* ladder ------------------------------------------------------------------
#
# Each label's undo, in source order. A failure "goes to" a label: that label's undo runs,
# then every label after it. Labels whose subsystems the model has no state for (perf,
# audit, LSM, sched_ext, NUMA policy, delay accounting) keep their place, with no undo.

Undo = Callable[["Machine", Task, ForkState], None]


def _core_free(k: Machine, current: Task, st: ForkState) -> None:
    """sched_core_free(p); the siglock and tasklist_lock are dropped."""


def _cancel_cgroup(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    cgroup_cancel_fork(k, st.p, st.args)


def _put_pidfd(k: Machine, current: Task, st: ForkState) -> None:
    if st.clone_flags & CLONE_PIDFD and st.pidfile is not None:
        fput(k, st.pidfile)
        put_unused_fd(current, st.pidfd)


def _free_pid(k: Machine, current: Task, st: ForkState) -> None:
    if st.pid is not None:
        free_pid(k, st.pid)


def _cleanup_thread(k: Machine, current: Task, st: ForkState) -> None:
    """exit_thread(p): no I/O bitmap or shadow stack is modelled to release."""


def _cleanup_io(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    st.p.io_context = None


def _cleanup_namespaces(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    exit_nsproxy_namespaces(k, st.p)


def _cleanup_mm(k: Machine, current: Task, st: ForkState) -> None:
    p = st.p
    assert p is not None
    if p.mm is not None:
        if p.mm.owner is p:
            p.mm.owner = None
        mmput(k, p.mm)


def _cleanup_signal(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    if not st.clone_flags & CLONE_THREAD:
        free_signal_struct(k, st.p.signal)


def _cleanup_sighand(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None and st.p.sighand is not None
    cleanup_sighand(k, st.p.sighand)


def _cleanup_fs(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    exit_fs(k, st.p)


def _cleanup_files(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    exit_files(k, st.p)


def _cleanup_semundo(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    exit_sem(k, st.p)


def _cleanup_count(k: Machine, current: Task, st: ForkState) -> None:
    assert st.p is not None
    uncharge_nproc(k, st.p)
    exit_creds(k, st.p)


def _free(k: Machine, current: Task, st: ForkState) -> None:
    p = st.p
    assert p is not None
    p.state = TASK_DEAD
    free_task(k, p)


def _fork_out(k: Machine, current: Task, st: ForkState) -> None:
    multiprocess = current.signal.multiprocess
    if st.delayed in multiprocess:
        multiprocess.remove(st.delayed)


BAD_FORK_LADDER: tuple[tuple[str, Undo | None], ...] = (
    ("bad_fork_core_free", _core_free),
    ("bad_fork_cancel_cgroup", _cancel_cgroup),
    ("bad_fork_put_pidfd", _put_pidfd),
    ("bad_fork_free_pid", _free_pid),
    ("bad_fork_cleanup_thread", _cleanup_thread),
    ("bad_fork_cleanup_io", _cleanup_io),
    ("bad_fork_cleanup_namespaces", _cleanup_namespaces),
    ("bad_fork_cleanup_mm", _cleanup_mm),
    ("bad_fork_cleanup_signal", _cleanup_signal),
    ("bad_fork_cleanup_sighand", _cleanup_sighand),
    ("bad_fork_cleanup_fs", _cleanup_fs),
    ("bad_fork_cleanup_files", _cleanup_files),
    ("bad_fork_cleanup_semundo", _cleanup_semundo),
    ("bad_fork_cleanup_security", None),
    ("bad_fork_cleanup_audit", None),
    ("bad_fork_cleanup_perf", None),
    ("bad_fork_sched_cancel_fork", None),
    ("bad_fork_cleanup_policy", None),
    ("bad_fork_cleanup_delayacct", None),
    ("bad_fork_cleanup_count", _cleanup_count),
    ("bad_fork_free", _free),
    ("fork_out", _fork_out),
)
LABEL_INDEX = {label: index for index, (label, _) in enumerate(BAD_FORK_LADDER)}


def unwind(k: Machine, current: Task, st: ForkState, label: str) -> None:
    """Run the undo of ``label`` and of every label below it."""
    for _, undo in BAD_FORK_LADDER[LABEL_INDEX[label] :]:
        if undo is not None:
            undo(k, current, st)


# ---- dup_task_struct ------------------------------------------------------------------------


@traced
def dup_task_struct(k: Machine, current: Task) -> Task:
    """A new task_struct and kernel stack, a copy of the parent's (arch_dup_task_struct)."""
    k.kmem_cache_alloc(current, "task_struct")
    try:
        k.kmem_cache_alloc(current, "thread_stack")
    except KernelError:
        k.kmem_cache_free("task_struct")
        raise
    p = Task()
    # What the kernel's "*dst = *src" carries over and copy_process does not reset.
    p.comm = current.comm
    p.flags = current.flags
    p.cred = p.real_cred = current.cred
    p.mm = current.mm
    p.active_mm = current.active_mm
    p.files = current.files
    p.fs = current.fs
    p.sighand = current.sighand
    p.signal = current.signal
    p.nsproxy = current.nsproxy
    p.sysvsem = current.sysvsem
    p.blocked = current.blocked
    p.real_blocked = current.real_blocked
    p.saved_sigmask = current.saved_sigmask
    p.sas_ss_sp = current.sas_ss_sp
    p.sas_ss_size = current.sas_ss_size
    p.personality = current.personality
    p.self_exec_id = current.self_exec_id
    p.user_dumpable = current.user_dumpable
    p.parent_exec_id = current.parent_exec_id
    p.policy = current.policy
    p.static_prio = current.static_prio
    p.normal_prio = current.normal_prio
    p.prio = current.prio
    p.rt_priority = current.rt_priority
    p.sched_reset_on_fork = current.sched_reset_on_fork
    p.se = current.se
    p.dl = current.dl
    p.cpu = current.cpu
    p.thread = current.thread
    p.io_context = current.io_context
    p.cgroups = current.cgroups
    p.exit_signal = current.exit_signal
    p.group_leader = current.group_leader
    p.real_parent = current.real_parent
    p.parent = current.parent
    p.pid = current.pid
    p.tgid = current.tgid
    p.thread_pid = current.thread_pid
    p.ptrace = current.ptrace
    p.exit_code = 0
    p.exit_state = 0
    p.in_execve = False
    p.state = current.state
    p.on_rq = 0
    p.pending_call = None
    p.ptrace_message = 0
    p.last_siginfo = None
    # One reference for the kernel's holders, two rcu users: the reaper and the scheduler.
    p.usage = 1
    p.rcu_users = 2
    p.stack = True
    p.fail_nth = 0
    return p


def free_task(k: Machine, p: Task) -> None:
    p.stack = False
    k.kmem_cache_free("thread_stack")
    k.kmem_cache_free("task_struct")


def get_task_struct(p: Task) -> Task:
    p.usage += 1
    return p


def put_task_struct(k: Machine, p: Task) -> None:
    p.usage -= 1
    if p.usage == 0:
        put_signal_of(k, p)
        exit_creds(k, p)
        free_task(k, p)


def put_signal_of(k: Machine, p: Task) -> None:
    put_signal_struct(k, p.signal)


def put_task_struct_rcu_user(k: Machine, p: Task) -> None:
    """The last rcu user (reaper or scheduler) lets the task go; sched_process_free fires."""
    p.rcu_users -= 1
    if p.rcu_users == 0:
        trace_sched_process_free(k, p)
        put_task_struct(k, p)


# ---- copy_thread (arch/x86/kernel/process.c) -------------------------------------------------


@traced
def copy_thread(k: Machine, current: Task, p: Task, args: KernelCloneArgs) -> None:
    """The child's registers: the parent's user frame with 0 as the return value, a new stack
    pointer if one was given, a new TLS base with CLONE_SETTLS. A kernel thread instead gets a
    frame that makes ret_from_fork call its function."""
    fsbase = current.thread.fsbase
    if p.flags & PF_KTHREAD:
        p.thread = ThreadStruct(None, fsbase, "ret_from_fork", kthread_fn_name(args))
        return
    parent_regs = current.thread.regs
    regs = parent_regs.copy() if parent_regs is not None else PtRegs()
    regs.ax = 0
    if args.stack:
        regs.sp = args.stack
    if args.fn is not None:
        # A user-mode thread that starts in a kernel function (kernel_init): no user frame yet.
        regs.sp = regs.ip = 0
        p.thread = ThreadStruct(regs, fsbase, "ret_from_fork", kthread_fn_name(args))
        return
    if args.flags & CLONE_SETTLS:
        # do_arch_prctl_64(ARCH_SET_FS): a base at or above TASK_SIZE_MAX is refused.
        if args.tls >= TASK_SIZE:
            raise KernelError(E.EPERM, f"copy_thread: CLONE_SETTLS base {args.tls:#x} is not a user address")
        fsbase = args.tls
    p.thread = ThreadStruct(regs, fsbase, "ret_from_fork")


def kthread_fn_name(args: KernelCloneArgs) -> str | None:
    fn = args.fn
    return getattr(fn, "__name__", None) if fn is not None else None


# ---- copy_process ------------------------------------------------------------------------------


@traced
def copy_process(k: Machine, current: Task, pid: object, trace: int, args: KernelCloneArgs) -> Task:
    """Create the new task, not yet running; raise KernelError after undoing what was done."""
    clone_flags = args.flags
    # A. Flag combinations that make no sense. Nothing to undo yet.
    if clone_flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS:
        raise KernelError(
            E.EINVAL, "copy_process: CLONE_NEWNS with CLONE_FS (root and cwd would cross mount namespaces)"
        )
    if clone_flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS:
        raise KernelError(E.EINVAL, "copy_process: CLONE_NEWUSER with CLONE_FS")
    if clone_flags & CLONE_THREAD and not clone_flags & CLONE_SIGHAND:
        raise KernelError(E.EINVAL, "copy_process: CLONE_THREAD requires CLONE_SIGHAND")
    if clone_flags & CLONE_SIGHAND and not clone_flags & CLONE_VM:
        raise KernelError(E.EINVAL, "copy_process: CLONE_SIGHAND requires CLONE_VM")
    if clone_flags & CLONE_PARENT and current.signal.flags & SIGNAL_UNKILLABLE:
        raise KernelError(
            E.EINVAL, "copy_process: CLONE_PARENT from an init (SIGNAL_UNKILLABLE) would make a sibling of init"
        )
    if clone_flags & CLONE_THREAD:
        if clone_flags & (CLONE_NEWUSER | CLONE_NEWPID):
            raise KernelError(E.EINVAL, "copy_process: CLONE_THREAD with CLONE_NEWUSER or CLONE_NEWPID")
        assert current.nsproxy is not None
        if task_active_pid_ns(current) is not current.nsproxy.pid_ns_for_children:
            raise KernelError(
                E.EINVAL, "copy_process: CLONE_THREAD after unshare(CLONE_NEWPID) or setns to a pid namespace"
            )
    if clone_flags & CLONE_PIDFD:
        if clone_flags & CLONE_DETACHED:
            raise KernelError(E.EINVAL, "copy_process: CLONE_PIDFD with CLONE_DETACHED")
        if clone_flags & CLONE_THREAD and not k.has(Behaviour.PIDFD_THREAD):
            raise KernelError(E.EINVAL, "copy_process: CLONE_PIDFD with CLONE_THREAD (allowed from 6.9)")

    # B. Group signals that arrive from here on are delayed into the child.
    delayed = SigPending()
    st = ForkState(args, delayed)
    if not clone_flags & CLONE_THREAD:
        current.signal.multiprocess.append(delayed)
    label = "fork_out"
    try:
        recalc_sigpending(current)
        if task_sigpending(current):
            raise KernelError(E.ERESTARTNOINTR, "copy_process: a signal is pending; the fork restarts after it")
        p = st.p = dup_task_struct(k, current)

        # C. The new task's identity and accounting.
        label = "bad_fork_free"
        p.flags &= ~PF_KTHREAD
        if args.kthread:
            p.flags |= PF_KTHREAD
        if args.user_worker:
            p.flags |= PF_USER_WORKER
        if args.io_thread:
            p.flags |= PF_IO_WORKER
        if args.name is not None:
            p.comm = args.name[: TASK_COMM_LEN - 1]
        p.set_child_tid = args.child_tid if clone_flags & CLONE_CHILD_SETTID else 0
        p.clear_child_tid = args.child_tid if clone_flags & CLONE_CHILD_CLEARTID else 0
        copy_creds(k, current, p, clone_flags)

        label = "bad_fork_cleanup_count"
        if nproc_over_limit(k, current, p):
            raise KernelError(E.EAGAIN, "copy_process: RLIMIT_NPROC reached for this user (is_rlimit_overlimit)")
        current.flags &= ~PF_NPROC_EXCEEDED
        if k.nr_threads >= k.max_threads:
            raise KernelError(E.EAGAIN, f"copy_process: nr_threads has reached threads-max ({k.max_threads})")
        p.flags &= ~(PF_SUPERPRIV | PF_WQ_WORKER | PF_IDLE | PF_NO_SETAFFINITY)
        p.flags |= PF_FORKNOEXEC
        p.children = {}
        p.ptraced = {}
        p.vfork_done = None
        p.pending = SigPending()
        p.tif_sigpending = False
        p.io_context = None
        p.jobctl = 0
        cgroup_fork(k, p)

        # D. Scheduler and the hooks of subsystems the model has no state for.
        label = "bad_fork_cleanup_policy"
        sched_fork(k, current, clone_flags, p)

        # E. The copy_* chain: share or copy each resource, in this order.
        label = "bad_fork_cleanup_security"
        copy_semundo(k, current, clone_flags, p)
        label = "bad_fork_cleanup_semundo"
        copy_files(k, current, clone_flags, p, args.no_files)
        label = "bad_fork_cleanup_files"
        copy_fs(k, current, clone_flags, p)
        label = "bad_fork_cleanup_fs"
        copy_sighand(k, current, clone_flags, p)
        label = "bad_fork_cleanup_sighand"
        copy_signal(k, current, clone_flags, p)
        label = "bad_fork_cleanup_signal"
        copy_mm(k, current, clone_flags, p)
        label = "bad_fork_cleanup_mm"
        copy_namespaces(k, current, clone_flags, p)
        label = "bad_fork_cleanup_namespaces"
        copy_io(k, current, clone_flags, p)
        label = "bad_fork_cleanup_io"
        copy_thread(k, current, p, args)

        label = "bad_fork_cleanup_thread"
        if pid is not INIT_STRUCT_PID:
            assert p.nsproxy is not None
            pid = st.pid = alloc_pid(k, current, p.nsproxy.pid_ns_for_children, args.set_tid)
        if clone_flags & CLONE_PIDFD:
            label = "bad_fork_free_pid"
            assert st.pid is not None
            st.pidfd, st.pidfile = __pidfd_prepare(
                k, current, st.pid, PIDFD_THREAD if clone_flags & CLONE_THREAD else 0
            )
            label = "bad_fork_put_pidfd"
            put_user_u32(current.mm, args.pidfd, st.pidfd)

        if p.flags & PF_KTHREAD or (clone_flags & (CLONE_VM | CLONE_VFORK)) == CLONE_VM:
            p.sas_ss_sp = p.sas_ss_size = 0
        p.pid = pid_nr(st.pid) if st.pid is not None else 0
        if clone_flags & CLONE_THREAD:
            p.group_leader = current.group_leader
            p.tgid = current.tgid
        else:
            p.group_leader = p
            p.tgid = p.pid
        p.pdeath_signal = 0

        label = "bad_fork_put_pidfd"
        cgroup_can_fork(k, current, p, args)
        label = "bad_fork_cancel_cgroup"
        sched_cgroup_fork(k, current, p)
        if k.has(Behaviour.FUTEX_PRIVATE_HASH) and clone_flags & (CLONE_THREAD | CLONE_VM) == CLONE_THREAD | CLONE_VM:
            futex_hash_allocate_default(k, current)
        p.start_time = p.start_boottime = k.now

        # F. Under tasklist_lock: the parent, then the last two reasons to give up.
        if clone_flags & (CLONE_PARENT | CLONE_THREAD):
            p.real_parent = current.real_parent
            p.parent_exec_id = current.parent_exec_id
            p.exit_signal = -1 if clone_flags & CLONE_THREAD else current.group_leader.exit_signal
        else:
            p.real_parent = current
            p.parent_exec_id = current.self_exec_id
            p.exit_signal = args.exit_signal
        label = "bad_fork_core_free"
        if st.pid is not None and not st.pid.numbers[-1][1].pid_allocated & PIDNS_ADDING:
            raise KernelError(E.ENOMEM, "copy_process: the child's pid namespace is dying (its init has exited)")
        if fatal_signal_pending(current):
            raise KernelError(E.EINTR, "copy_process: the parent was killed during the fork")
    except KernelError as err:
        unwind(k, current, st, label)
        err.unwound_from = label
        raise

    # No failure is possible from here on.
    link_new_task(k, current, p, st, trace)
    if st.pidfile is not None:
        fd_install(current, st.pidfd, st.pidfile)
    cgroup_post_fork(k, p, args)
    trace_task_newtask(k, current, p, clone_flags)
    copy_oom_score_adj(clone_flags, p)
    return p


def link_new_task(k: Machine, current: Task, p: Task, st: ForkState, trace: int) -> None:
    """The task becomes visible: pids attached, joined to its thread group or to its parent."""
    clone_flags = st.clone_flags
    pid = st.pid
    if p.pid:
        assert pid is not None
        ptrace_init_task(k, current, p, bool(clone_flags & CLONE_PTRACE) or bool(trace))
        set_task_pid_ptr(p, PIDTYPE_PID, pid)
        if p.exit_signal >= 0:  # thread_group_leader(p)
            signal = p.signal
            signal.pids[PIDTYPE_TGID] = pid
            signal.pids[PIDTYPE_PGID] = current.signal.pids[PIDTYPE_PGID]
            signal.pids[PIDTYPE_SID] = current.signal.pids[PIDTYPE_SID]
            if is_child_reaper(pid):
                pid.numbers[-1][1].child_reaper = p
                signal.flags |= SIGNAL_UNKILLABLE
            signal.shared_pending.signal = st.delayed.signal
            parent_signal = p.real_parent.signal  # type: ignore[union-attr]
            signal.has_child_subreaper = parent_signal.has_child_subreaper or parent_signal.is_child_subreaper
            p.real_parent.children[p] = None  # type: ignore[union-attr]
            k.tasks[p] = None
            attach_pid(p, PIDTYPE_TGID)
            attach_pid(p, PIDTYPE_PGID)
            attach_pid(p, PIDTYPE_SID)
            k.process_counts[p.cpu] += 1
        else:
            signal = current.signal
            signal.nr_threads += 1
            signal.quick_threads += 1
            signal.live += 1
            signal.sigcnt += 1
            signal.thread_head.append(p)
            task_join_group_stop(current, p)
        attach_pid(p, PIDTYPE_PID)
        k.nr_threads += 1
    k.total_forks += 1
    _fork_out(k, current, st)


def copy_oom_score_adj(clone_flags: int, p: Task) -> None:
    """A CLONE_VM child that is neither a thread nor a vfork child marks the mm as shared by processes."""
    if clone_flags & (CLONE_VM | CLONE_THREAD | CLONE_VFORK) != CLONE_VM:
        return
    if p.mm is not None:
        p.mm.flags |= MMF_MULTIPROCESS


@traced
def copy_io(k: Machine, current: Task, clone_flags: int, p: Task) -> None:
    """CLONE_IO shares the io_context; the model's tasks never have one, so nothing is shared."""
    ioc = current.io_context
    if ioc is None:
        return
    p.io_context = ioc if clone_flags & CLONE_IO else None


# ---- kernel_clone and the entry points ---------------------------------------------------------


@traced
def kernel_clone(k: Machine, current: Task, args: KernelCloneArgs) -> int:
    """Create the task, wake it, and return its pid as the caller sees it."""
    clone_flags = args.flags
    if clone_flags & CLONE_PIDFD and clone_flags & CLONE_PARENT_SETTID and args.pidfd == args.parent_tid:
        raise KernelError(E.EINVAL, "kernel_clone: CLONE_PIDFD and CLONE_PARENT_SETTID would write the same word")
    trace = 0
    if not clone_flags & CLONE_UNTRACED:
        if clone_flags & CLONE_VFORK:
            trace = PTRACE_EVENT_VFORK
        elif args.exit_signal != SIGCHLD:
            trace = PTRACE_EVENT_CLONE
        else:
            trace = PTRACE_EVENT_FORK
        if not ptrace_event_enabled(current, trace):
            trace = 0
    p = copy_process(k, current, None, trace, args)
    trace_sched_process_fork(k, current, p)
    pid = get_pid(p.thread_pid)  # type: ignore[arg-type]
    nr = pid_nr_ns(pid, task_active_pid_ns(current))
    if clone_flags & CLONE_PARENT_SETTID:
        try:
            put_user_u32(current.mm, args.parent_tid, nr)
        except KernelError:
            pass  # a bad pointer is ignored: the child exists now
    vfork = None
    if clone_flags & CLONE_VFORK:
        vfork = p.vfork_done = Completion()
        get_task_struct(p)
    wake_up_new_task(k, p)
    k.woken.append(p)  # the child's first run: ret_from_fork

    def rest() -> int:
        if vfork is not None:
            return wait_for_vfork_done(k, current, p, vfork, pid, nr)
        put_pid(k, pid)
        return nr

    if trace:
        # The tracer hears of the new child first; the caller stops until it is let go.
        return ptrace_event_pid(k, current, trace, pid, rest, known=nr)
    return rest()


@traced
def wait_for_vfork_done(k: Machine, current: Task, child: Task, vfork: Completion, pid: Pid, nr: int) -> int:
    """The vfork parent sleeps (killable) until the child execs or exits and releases the mm."""

    def finish() -> int:
        if not vfork.done:
            if fatal_signal_pending(current):
                child.vfork_done = None
                put_task_struct(k, child)
                put_pid(k, pid)
                raise KernelError(E.EINTR, "wait_for_vfork_done: the vfork parent was killed")
            raise WouldBlock(vfork.wait, finish, TASK_KILLABLE, value=nr)
        put_task_struct(k, child)

        def done() -> int:
            put_pid(k, pid)
            return nr

        if ptrace_event_enabled(current, PTRACE_EVENT_VFORK_DONE):
            return ptrace_event_pid(k, current, PTRACE_EVENT_VFORK_DONE, pid, done, known=nr)
        return done()

    return finish()


def sys_fork(k: Machine, current: Task) -> int:
    return kernel_clone(k, current, KernelCloneArgs(0, SIGCHLD))


def sys_vfork(k: Machine, current: Task) -> int:
    return kernel_clone(k, current, KernelCloneArgs(CLONE_VFORK | CLONE_VM, SIGCHLD))


def sys_clone(
    k: Machine, current: Task, clone_flags: int, newsp: int, parent_tidptr: int, child_tidptr: int, tls: int
) -> int:
    """x86-64 argument order. Only the low 32 bits count; the low byte is the exit signal, unchecked."""
    low = clone_flags & CLONE_LEGACY_FLAGS
    args = KernelCloneArgs(
        low & ~CSIGNAL,
        low & CSIGNAL,
        pidfd=parent_tidptr,
        child_tid=child_tidptr,
        parent_tid=parent_tidptr,
        stack=newsp,
        tls=tls,
    )
    return kernel_clone(k, current, args)


def clone_args_from_fields(
    k: Machine, current: Task, fields: dict[str, int], usize: int, read_set_tid: Callable[[int, int], tuple[int, ...]]
) -> KernelCloneArgs:
    """The checks of copy_clone_args_from_user() after the struct was read, in the kernel's order."""
    set_tid_size = fields["set_tid_size"]
    if set_tid_size > MAX_PID_NS_LEVEL:
        raise KernelError(E.EINVAL, f"clone3: set_tid_size {set_tid_size} is more than {MAX_PID_NS_LEVEL}")
    if not fields["set_tid"] and set_tid_size > 0:
        raise KernelError(E.EINVAL, "clone3: set_tid_size without a set_tid array")
    if fields["set_tid"] and set_tid_size == 0:
        raise KernelError(E.EINVAL, "clone3: a set_tid array with set_tid_size 0")
    exit_signal = fields["exit_signal"]
    if exit_signal & ~CSIGNAL or not valid_signal(exit_signal):
        raise KernelError(E.EINVAL, f"clone3: exit_signal {exit_signal} is not a valid signal")
    if fields["flags"] & CLONE_INTO_CGROUP and (fields["cgroup"] > INT_MAX or usize < CLONE_ARGS_SIZE_VER2):
        raise KernelError(E.EINVAL, "clone3: CLONE_INTO_CGROUP needs a cgroup fd and a struct of at least 88 bytes")
    set_tid = read_set_tid(fields["set_tid"], set_tid_size) if fields["set_tid"] else ()
    return KernelCloneArgs(
        fields["flags"],
        exit_signal,
        pidfd=fields["pidfd"],
        child_tid=fields["child_tid"],
        parent_tid=fields["parent_tid"],
        stack=fields["stack"],
        stack_size=fields["stack_size"],
        tls=fields["tls"],
        set_tid=set_tid,
        cgroup=fields["cgroup"],
    )


def copy_clone_args_from_user(k: Machine, current: Task, uargs: int, usize: int) -> KernelCloneArgs:
    """Read struct clone_args from the caller's memory, any size from VER0 up to a page."""
    if usize > PAGE_SIZE:
        raise KernelError(E.E2BIG, f"clone3: size {usize} is larger than a page")
    if usize < CLONE_ARGS_SIZE_VER0:
        raise KernelError(E.EINVAL, f"clone3: size {usize} is smaller than CLONE_ARGS_SIZE_VER0 (64)")
    ksize = len(CLONE_ARGS_FIELDS) * 8
    mm = current.mm
    raw = copy_struct_from_user(mm, uargs, ksize, usize)
    fields = {name: int.from_bytes(raw[i * 8 : i * 8 + 8], "little") for i, name in enumerate(CLONE_ARGS_FIELDS)}

    def read_set_tid(addr: int, count: int) -> tuple[int, ...]:
        data = copy_from_user(mm, addr, count * 4)
        return tuple(int.from_bytes(data[i * 4 : i * 4 + 4], "little", signed=True) for i in range(count))

    return clone_args_from_fields(k, current, fields, usize, read_set_tid)


def clone3_args_valid(k: Machine, kargs: KernelCloneArgs) -> None:
    """clone3's own refusals: unknown or legacy-only flags, contradictions, a bad stack."""
    flags = kargs.flags
    if flags & ~(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP):
        raise KernelError(
            E.EINVAL,
            f"clone3: unknown flags {flags & ~(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP):#x}",
        )
    reusable = CSIGNAL & ~CLONE_NEWTIME if k.has(Behaviour.CLONE3_NEWTIME) else CSIGNAL
    if flags & (CLONE_DETACHED | reusable):
        raise KernelError(E.EINVAL, "clone3: CLONE_DETACHED and the exit-signal byte are not flags in clone3")
    if flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND:
        raise KernelError(E.EINVAL, "clone3: CLONE_SIGHAND with CLONE_CLEAR_SIGHAND")
    if flags & (CLONE_THREAD | CLONE_PARENT) and kargs.exit_signal:
        raise KernelError(E.EINVAL, "clone3: CLONE_THREAD or CLONE_PARENT with an exit_signal")
    if kargs.stack == 0:
        if kargs.stack_size > 0:
            raise KernelError(E.EINVAL, "clone3: stack_size without a stack")
    else:
        if kargs.stack_size == 0:
            raise KernelError(E.EINVAL, "clone3: a stack with stack_size 0")
        if not access_ok(kargs.stack, kargs.stack_size):
            raise KernelError(E.EINVAL, "clone3: the stack is not in the user address space")
        # The caller gives the lowest address; the stack grows down from its top.
        kargs.stack += kargs.stack_size


def sys_clone3(k: Machine, current: Task, uargs: int, size: int) -> int:
    kargs = copy_clone_args_from_user(k, current, uargs, size)
    clone3_args_valid(k, kargs)
    return kernel_clone(k, current, kargs)


def clone3_from_values(k: Machine, current: Task, values: dict[str, int], set_tid: tuple[int, ...]) -> int:
    """clone3 with the struct given as values (a VER2 struct that needs no reading)."""
    fields = dict(values)
    fields["set_tid"] = 1 if set_tid else 0  # any non-null pointer: the array comes from ``set_tid``
    fields["set_tid_size"] = len(set_tid)
    kargs = clone_args_from_fields(k, current, fields, CLONE_ARGS_SIZE_VER2, lambda addr, n: tuple(set_tid[:n]))
    clone3_args_valid(k, kargs)
    return kernel_clone(k, current, kargs)


def kernel_thread(
    k: Machine, current: Task, fn: Callable[..., object], arg: object, name: str | None, flags: int
) -> int:
    """A kernel thread: no user memory, never traced, running ``fn`` from ret_from_fork."""
    low = flags & CLONE_LEGACY_FLAGS
    args = KernelCloneArgs(
        (low | CLONE_VM | CLONE_UNTRACED) & ~CSIGNAL, low & CSIGNAL, fn=fn, fn_arg=arg, name=name, kthread=True
    )
    return kernel_clone(k, current, args)


def user_mode_thread(k: Machine, current: Task, fn: Callable[..., object], arg: object, flags: int) -> int:
    """Like kernel_thread but not PF_KTHREAD: it will exec a user program (kernel_init does)."""
    low = flags & CLONE_LEGACY_FLAGS
    args = KernelCloneArgs((low | CLONE_VM | CLONE_UNTRACED) & ~CSIGNAL, low & CSIGNAL, fn=fn, fn_arg=arg)
    return kernel_clone(k, current, args)


def fork_idle(k: Machine, current: Task, cpu: int) -> Task:
    """The idle task of another CPU: pid 0 (&init_struct_pid), never on the task lists."""
    args = KernelCloneArgs(CLONE_VM, fn=None, kthread=True, name=f"swapper/{cpu}")
    args.idle = True
    p = copy_process(k, current, INIT_STRUCT_PID, 0, args)
    p.cpu = cpu
    return p


@traced
def schedule_tail(k: Machine, p: Task) -> None:
    """The child's first moments in ret_from_fork: CLONE_CHILD_SETTID is written by the child itself."""
    if p.set_child_tid:
        try:
            put_user_u32(p.mm, p.set_child_tid, pid_nr_ns(p.thread_pid, task_active_pid_ns(p)))
        except KernelError:
            pass
        p.set_child_tid = 0
    calculate_sigpending(p)


# ---- unshare ---------------------------------------------------------------------------------

UNSHARE_ALLOWED = (
    CLONE_THREAD
    | CLONE_FS
    | CLONE_NEWNS
    | CLONE_SIGHAND
    | CLONE_VM
    | CLONE_FILES
    | CLONE_SYSVSEM
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWNET
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWCGROUP
    | CLONE_NEWTIME
)


def check_unshare_flags(current: Task, unshare_flags: int) -> None:
    """unshare can only "unshare" what is not shared: a thread, a shared sighand or mm is refused."""
    if unshare_flags & ~UNSHARE_ALLOWED:
        raise KernelError(E.EINVAL, f"unshare: unknown flags {unshare_flags & ~UNSHARE_ALLOWED:#x}")
    if unshare_flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) and current.signal.nr_threads > 1:
        raise KernelError(E.EINVAL, "unshare: CLONE_THREAD, CLONE_SIGHAND or CLONE_VM in a multithreaded process")
    if unshare_flags & (CLONE_SIGHAND | CLONE_VM):
        assert current.sighand is not None
        if current.sighand.count > 1:
            raise KernelError(E.EINVAL, "unshare: CLONE_SIGHAND or CLONE_VM while the signal handlers are shared")
    if unshare_flags & CLONE_VM and current.mm is not None and current.mm.mm_users > 1:
        raise KernelError(E.EINVAL, "unshare: CLONE_VM while the address space is shared")


@traced
def ksys_unshare(k: Machine, current: Task, unshare_flags: int) -> None:
    """unshare(2): implied flags, the checks, then new fs/files/creds/namespaces, committed together."""
    if unshare_flags & CLONE_NEWUSER:
        unshare_flags |= CLONE_THREAD | CLONE_FS
    if unshare_flags & CLONE_VM:
        unshare_flags |= CLONE_SIGHAND
    if unshare_flags & CLONE_SIGHAND:
        unshare_flags |= CLONE_THREAD
    if unshare_flags & CLONE_NEWNS:
        unshare_flags |= CLONE_FS
    check_unshare_flags(current, unshare_flags)

    fs, files = current.fs, current.files
    assert fs is not None
    new_fs = None
    new_fd: FilesStruct | None = None
    new_cred = None
    new_nsproxy: Nsproxy | None = None
    try:
        # A new mount namespace gets a fresh fs_struct even when this one is not shared, so that
        # copy_mnt_ns() never moves the live one (which a later failure would leave moved).
        fresh_for_newns = unshare_flags & CLONE_NEWNS and k.has(Behaviour.UNSHARE_NEWNS_COPIES_FS)
        if unshare_flags & CLONE_FS and (fs.users > 1 or fresh_for_newns):
            new_fs = copy_fs_struct(k, current, fs)
        if unshare_flags & CLONE_FILES and files is not None and files.count > 1:
            new_fd = dup_fd(k, current, files)
        if unshare_flags & CLONE_NEWUSER:
            new_cred = prepare_creds(k, current)
            try:
                create_user_ns(k, current, new_cred)
            except KernelError:
                put_cred(k, new_cred)
                new_cred = None
                raise
        if unshare_flags & CLONE_NS_FLAGS:
            user_ns = new_cred.user_ns if new_cred is not None else current.cred.user_ns
            # Checked with the caller's present creds: as owner it holds every capability
            # over a user namespace it has just made.
            if not ns_capable(current, user_ns, CAP_SYS_ADMIN):
                raise KernelError(E.EPERM, "unshare: CLONE_NEW* needs CAP_SYS_ADMIN in the user namespace")
            new_nsproxy = create_new_namespaces(k, current, unshare_flags, current, user_ns, new_fs or fs)
        if new_cred is not None:
            set_cred_ucounts(k, new_cred)
    except KernelError:
        if new_nsproxy is not None:
            put_nsproxy(k, new_nsproxy)
        if new_cred is not None:
            put_cred(k, new_cred)
        if new_fd is not None:
            put_files_struct(k, new_fd)
        if new_fs is not None:
            free_fs_struct(k, new_fs)
        raise

    # Commit: nothing can fail from here.
    if unshare_flags & (CLONE_NEWIPC | CLONE_SYSVSEM):
        exit_sem(k, current)
    if new_nsproxy is not None:
        switch_task_namespaces(k, current, new_nsproxy)
    if new_fs is not None:
        fs.users -= 1
        current.fs = new_fs
        if not fs.users:
            free_fs_struct(k, fs)
    if new_fd is not None:
        assert files is not None
        current.files = new_fd
        put_files_struct(k, files)
    if new_cred is not None:
        commit_creds(k, current, new_cred)
