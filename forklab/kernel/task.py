"""struct task_struct, its states and flags (include/linux/sched.h).

A task is a plain object with the kernel's field names. Everything it shares with other tasks
(mm, files, fs, sighand, signal, nsproxy, cred) is a reference to one Python object, counted
the way the kernel counts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forklab.kernel.cgroup.cgroup import CssSet
    from forklab.kernel.cred import Cred
    from forklab.kernel.fs.file import FilesStruct
    from forklab.kernel.fs.fs_struct import FsStruct
    from forklab.kernel.mm.mm import MmStruct
    from forklab.kernel.nsproxy import Nsproxy
    from forklab.kernel.pid import Pid
    from forklab.kernel.sched.core import SchedEntity
    from forklab.kernel.sched.deadline import SchedDlEntity
    from forklab.kernel.signal import SighandStruct, SigInfo, SignalStruct, SigPending
    from forklab.kernel.syscall import PendingCall
    from forklab.kernel.wait import Completion

# __state and exit_state bits.
TASK_RUNNING = 0x0000
TASK_INTERRUPTIBLE = 0x0001
TASK_UNINTERRUPTIBLE = 0x0002
__TASK_STOPPED = 0x0004
__TASK_TRACED = 0x0008
EXIT_DEAD = 0x0010
EXIT_ZOMBIE = 0x0020
EXIT_TRACE = EXIT_ZOMBIE | EXIT_DEAD
TASK_PARKED = 0x0040
TASK_DEAD = 0x0080
TASK_WAKEKILL = 0x0100
TASK_WAKING = 0x0200
TASK_NOLOAD = 0x0400
TASK_NEW = 0x0800
TASK_KILLABLE = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE
TASK_STOPPED = TASK_WAKEKILL | __TASK_STOPPED
TASK_TRACED = __TASK_TRACED
TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD
TASK_REPORT = (
    TASK_RUNNING
    | TASK_INTERRUPTIBLE
    | TASK_UNINTERRUPTIBLE
    | __TASK_STOPPED
    | __TASK_TRACED
    | EXIT_DEAD
    | EXIT_ZOMBIE
    | TASK_PARKED
)

# The letters of /proc/<pid>/status and ps, indexed by fls() of the reported state.
TASK_STATE_ARRAY = (
    "R (running)",
    "S (sleeping)",
    "D (disk sleep)",
    "T (stopped)",
    "t (tracing stop)",
    "X (dead)",
    "Z (zombie)",
    "P (parked)",
    "I (idle)",
)

# task->flags
PF_IDLE = 0x00000002
PF_EXITING = 0x00000004
PF_IO_WORKER = 0x00000010
PF_WQ_WORKER = 0x00000020
PF_FORKNOEXEC = 0x00000040
PF_SUPERPRIV = 0x00000100
PF_SIGNALED = 0x00000400
PF_NPROC_EXCEEDED = 0x00001000
PF_USER_WORKER = 0x00004000
PF_NOFREEZE = 0x00008000
PF_KTHREAD = 0x00200000
PF_RANDOMIZE = 0x00400000
PF_NO_SETAFFINITY = 0x04000000

TASK_COMM_LEN = 16


class Task:
    """struct task_struct: one schedulable thread."""

    # The kernel spells the state field ``__state`` (so that nobody reads it without
    # READ_ONCE); Python would mangle that name, so here it is ``state``.
    __slots__ = (
        "active_mm",
        "blocked",
        "cgroups",
        "children",
        "clear_child_tid",
        "comm",
        "cpu",
        "cred",
        "dl",
        "exit_code",
        "exit_signal",
        "exit_state",
        "fail_nth",
        "files",
        "flags",
        "fs",
        "group_leader",
        "in_execve",
        "io_context",
        "jobctl",
        "last_siginfo",
        "mm",
        "normal_prio",
        "nsproxy",
        "on_rq",
        "parent",
        "parent_exec_id",
        "pdeath_signal",
        "pending",
        "pending_call",
        "personality",
        "pid",
        "policy",
        "prio",
        "ptrace",
        "ptrace_message",
        "ptraced",
        "rcu_users",
        "real_blocked",
        "real_cred",
        "real_parent",
        "rt_priority",
        "sas_ss_size",
        "sas_ss_sp",
        "saved_sigmask",
        "sched_reset_on_fork",
        "se",
        "self_exec_id",
        "set_child_tid",
        "sighand",
        "signal",
        "stack",
        "start_boottime",
        "start_time",
        "state",
        "static_prio",
        "sysvsem",
        "tgid",
        "thread",
        "thread_pid",
        "tif_sigpending",
        "usage",
        "user_dumpable",
        "vfork_done",
    )

    active_mm: MmStruct | None
    blocked: int
    cgroups: CssSet | None
    children: dict[Task, None]
    clear_child_tid: int
    comm: str
    cpu: int
    cred: Cred
    dl: SchedDlEntity
    exit_code: int
    exit_signal: int
    exit_state: int
    fail_nth: int
    files: FilesStruct | None
    flags: int
    fs: FsStruct | None
    group_leader: Task
    in_execve: bool
    io_context: Any
    jobctl: int
    last_siginfo: SigInfo | None
    mm: MmStruct | None
    normal_prio: int
    nsproxy: Nsproxy | None
    on_rq: int
    parent: Task | None
    parent_exec_id: int
    pdeath_signal: int
    pending: SigPending
    pending_call: PendingCall | None
    personality: int
    pid: int
    policy: int
    prio: int
    ptrace: int
    ptrace_message: int
    ptraced: dict[Task, None]
    real_blocked: int
    real_cred: Cred
    rcu_users: int
    real_parent: Task | None
    rt_priority: int
    sas_ss_size: int
    sas_ss_sp: int
    saved_sigmask: int
    sched_reset_on_fork: bool
    se: SchedEntity
    self_exec_id: int
    set_child_tid: int
    sighand: SighandStruct | None
    signal: SignalStruct
    stack: bool
    start_boottime: int
    start_time: int
    state: int
    static_prio: int
    sysvsem: Any
    tgid: int
    thread: ThreadStruct
    thread_pid: Pid | None
    # TIF_SIGPENDING of thread_info.flags: the task looks for signals on its way to user mode.
    tif_sigpending: bool
    usage: int
    # Whether its mm was dumpable by its user when exit_mm() let it go (never set for a kernel
    # thread): what ptrace's access check goes by once the mm is gone.
    user_dumpable: bool
    vfork_done: Completion | None

    def __repr__(self) -> str:
        return f"<task {self.comm}-{self.pid}>"


class PtRegs:
    """The user-mode registers saved on kernel entry (x86-64 struct pt_regs)."""

    __slots__ = ("ax", "bp", "bx", "cx", "di", "dx", "flags", "ip", "orig_ax", "r8", "r9", "r10", "si", "sp")

    ax: int
    bp: int
    bx: int
    cx: int
    di: int
    dx: int
    flags: int
    ip: int
    orig_ax: int
    r8: int
    r9: int
    r10: int
    sp: int
    si: int

    def __init__(self, ip: int = 0, sp: int = 0) -> None:
        self.ax = self.bx = self.cx = self.dx = self.si = self.di = self.bp = 0
        self.r8 = self.r9 = self.r10 = 0
        self.orig_ax = -1
        self.flags = 0x202  # IF set, as for any user task
        self.ip = ip
        self.sp = sp

    def copy(self) -> PtRegs:
        clone = PtRegs.__new__(PtRegs)
        clone.ax, clone.bx, clone.cx, clone.dx = self.ax, self.bx, self.cx, self.dx
        clone.si, clone.di, clone.bp, clone.sp = self.si, self.di, self.bp, self.sp
        clone.r8, clone.r9, clone.r10 = self.r8, self.r9, self.r10
        clone.ip, clone.flags, clone.orig_ax = self.ip, self.flags, self.orig_ax
        return clone

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in PtRegs.__slots__}


class ThreadStruct:
    """The arch part of a task: where it resumes in the kernel, its user registers, its TLS."""

    __slots__ = ("fsbase", "kthread_fn", "regs", "resume")

    fsbase: int
    kthread_fn: str | None
    regs: PtRegs | None  # None for kernel threads: they have no user-mode frame
    resume: str  # the kernel function the task's first switch returns into

    def __init__(self, regs: PtRegs | None, fsbase: int = 0, resume: str = "", kthread_fn: str | None = None):
        self.regs = regs
        self.fsbase = fsbase
        self.resume = resume
        self.kthread_fn = kthread_fn


def task_state_index(p: Task) -> int:
    """fs/proc/array.c's __task_state_index(): which letter ps shows."""
    if p.state & TASK_IDLE == TASK_IDLE:
        return len(TASK_STATE_ARRAY) - 1
    return ((p.state | p.exit_state) & TASK_REPORT).bit_length()


def task_state_letter(p: Task) -> str:
    return TASK_STATE_ARRAY[task_state_index(p)][0]


def thread_group_leader(p: Task) -> bool:
    return p.exit_signal >= 0


def same_thread_group(p1: Task, p2: Task) -> bool:
    return p1.signal is p2.signal
