"""fs/exec.c: replacing a task's program.

The model's programs are files that start with the ELF magic; executing one gives the task
a fresh address space laid out like a small PIE binary (text, data, stack), the file's base
name as comm, and everything exec resets: handlers, close-on-exec files, exit_signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.cred import Cred, commit_creds, prepare_creds, put_cred
from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.exit import release_task
from forklab.kernel.fs.file import FilesStruct, do_close_on_exec, dup_fd, put_files_struct
from forklab.kernel.fs.namei import path_lookup
from forklab.kernel.fs.vfs import ELF_MAGIC, MAY_EXEC, inode_permission
from forklab.kernel.ftrace import traced
from forklab.kernel.mm.mm import (
    SUID_DUMP_USER,
    TASK_SIZE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_READ,
    VM_WRITE,
    MmStruct,
    Vma,
    complete_vfork_done,
    copy_to_user,
    mm_release,
    mmput,
    vm_area_alloc,
)
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_SID, PIDTYPE_TGID, exchange_tids, pid_nr_ns, transfer_pid
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.ptrace import PTRACE_EVENT_EXEC, ptrace_event
from forklab.kernel.signal import (
    SIGNAL_GROUP_EXIT,
    SighandStruct,
    cleanup_sighand,
    flush_signal_handlers,
    thread_group_empty,
    zap_other_threads,
)
from forklab.kernel.task import (
    EXIT_DEAD,
    PF_FORKNOEXEC,
    PF_NO_SETAFFINITY,
    PF_NOFREEZE,
    PF_NPROC_EXCEEDED,
    PF_RANDOMIZE,
    TASK_COMM_LEN,
    TASK_KILLABLE,
    PtRegs,
    Task,
)
from forklab.kernel.trace import trace_sched_process_exec
from forklab.kernel.ucount import UCOUNT_RLIMIT_NPROC, is_rlimit_overlimit
from forklab.kernel.user_namespace import make_kuid
from forklab.uapi import errno as E
from forklab.uapi.resource import RLIMIT_NPROC
from forklab.uapi.signal import SIGCHLD, SIGKILL, sigmask

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine

# Where a small PIE program lands when address randomization is off.
ELF_ET_DYN_BASE = 0x555555554000
TEXT_PAGES = 2
DATA_PAGES = 1
STACK_TOP = TASK_SIZE  # the stack ends where the user address space does
STACK_PAGES = 33
PAGE = 4096


@traced
def do_execve(k: Machine, current: Task, filename: str, argv: tuple[str, ...], envp: tuple[str, ...]) -> int:
    """Returns 0 in the new program; before the point of no return, failures leave the task as it was."""
    if current.flags & PF_NPROC_EXCEEDED and is_rlimit_overlimit(
        current.real_cred.ucounts, UCOUNT_RLIMIT_NPROC, current.signal.rlim[RLIMIT_NPROC][0]
    ):
        raise KernelError(E.EAGAIN, "execve: RLIMIT_NPROC is still exceeded after a set*uid")
    current.flags &= ~PF_NPROC_EXCEEDED
    _, inode = path_lookup(k, current, filename)
    if not inode.is_reg:
        raise KernelError(E.EACCES, f"execve: {filename!r} is not a regular file")
    inode_permission(current, inode, MAY_EXEC)
    if not inode.mode & 0o111:
        raise KernelError(E.EACCES, f"execve: {filename!r} has no execute bit")
    data = bytes(inode.data or b"")
    if not data.startswith(ELF_MAGIC):
        raise KernelError(E.ENOEXEC, f"execve: {filename!r} is not an ELF executable")
    k.kmem_cache_alloc(current, "mm_struct")
    mm = MmStruct()
    try:
        k.kmem_cache_alloc(current, "pgd")
    except KernelError:
        k.kmem_cache_free("mm_struct")
        raise
    mm.pgd = True
    mm.user_ns = current.cred.user_ns  # mm_alloc() by the caller, before its creds change
    new_cred = bprm_creds_from_file(k, current)
    # The point of no return: from here a failure kills the task (its fatal signal is pending).
    old_pid = current.pid
    tracer = current.parent
    # The tracer is told the pid the task had before de_thread, as its own namespace numbers it.
    old_vpid = pid_nr_ns(current.thread_pid, task_active_pid_ns(tracer)) if tracer is not None else 0

    def finish() -> int:
        begin_new_exec(k, current, mm, filename)
        # Dumpable unless the old ids were mixed (the new program has no set-id bits).
        cred = current.cred
        mixed = (cred.euid, cred.egid) != (cred.uid, cred.gid)
        mm.dumpable = k.suid_dumpable if mixed else SUID_DUMP_USER
        commit_creds(k, current, new_cred)
        setup_new_exec(k, current, mm, argv, envp)
        trace_sched_process_exec(k, current, filename, old_pid)
        return ptrace_event(k, current, PTRACE_EVENT_EXEC, old_vpid, lambda: 0)

    def abandon() -> None:
        put_cred(k, new_cred)
        mmput(k, mm)

    return de_thread(k, current, finish, abandon)


def bprm_creds_from_file(k: Machine, current: Task) -> Cred:
    """The credentials the new program runs with (security/commoncap.c).

    The model's programs carry no file capabilities and no set-id bits, so: the namespace's
    root (real or effective uid 0) gets its bounding and inheritable sets as permitted, and
    an effective set if its euid is 0; anyone else keeps only the ambient set.
    """
    new = prepare_creds(k, current)
    root = make_kuid(new.user_ns, 0)
    permitted = 0
    if root != -1 and root in (new.euid, new.uid):
        permitted = new.cap_bset | new.cap_inheritable
    new.suid = new.fsuid = new.euid
    new.sgid = new.fsgid = new.egid
    new.cap_permitted = permitted | new.cap_ambient
    new.cap_effective = new.cap_permitted if root != -1 and new.euid == root else new.cap_ambient
    return new


@traced
def de_thread(k: Machine, tsk: Task, then: Callable[[], int], abandon: Callable[[], None]) -> int:
    """Make ``tsk`` the only thread of its group, then run the rest of the exec (``then``).

    The other threads get SIGKILL and the exec sleeps (killable) until they are released; a
    thread other than the leader also waits for the leader to be a zombie, then takes over its
    pid, its place in the process tree and its process group and session, and releases it.
    """
    signal = tsk.signal
    if thread_group_empty(tsk):
        tsk.exit_signal = SIGCHLD  # the execution domain changes
        return then()
    if signal.flags & SIGNAL_GROUP_EXIT or signal.group_exec_task is not None:
        abandon()
        raise KernelError(E.EAGAIN, "execve: the thread group is already exiting or exec'ing")
    signal.group_exec_task = tsk
    signal.notify_count = zap_other_threads(k, tsk)
    if tsk.group_leader is not tsk:
        signal.notify_count -= 1  # the leader stays a zombie: it is never released by exit

    def killed() -> int:
        signal.group_exec_task = None
        signal.notify_count = 0
        abandon()
        raise KernelError(E.EAGAIN, "execve: killed while waiting for the other threads")

    def wait_for_threads() -> int:
        if tsk.pending.signal & sigmask(SIGKILL):
            return killed()
        if signal.notify_count > 0:
            raise WouldBlock(None, wait_for_threads, TASK_KILLABLE)
        if tsk.group_leader is not tsk:
            signal.notify_count = -1  # exit_notify() of the leader wakes us
            if not tsk.group_leader.exit_state:
                raise WouldBlock(None, wait_for_threads, TASK_KILLABLE)
            take_over_leader(k, tsk)
        signal.group_exec_task = None
        signal.notify_count = 0
        tsk.exit_signal = SIGCHLD
        return then()

    return wait_for_threads()


def take_over_leader(k: Machine, tsk: Task) -> None:
    """The exec'ing thread becomes the group's leader under the leader's pid; the old leader,
    a zombie, gets the thread's pid and is released."""
    leader = tsk.group_leader
    tsk.start_time = leader.start_time
    tsk.start_boottime = leader.start_boottime
    exchange_tids(tsk, leader)
    for kind in (PIDTYPE_TGID, PIDTYPE_PGID, PIDTYPE_SID):
        transfer_pid(leader, tsk, kind)
    replace_key(k.tasks, leader, tsk)
    parent = leader.real_parent
    if parent is not None and leader in parent.children:
        replace_key(parent.children, leader, tsk)
    tsk.group_leader = leader.group_leader = tsk
    leader.exit_signal = -1  # the new leader's becomes SIGCHLD as de_thread() ends
    leader.exit_state = EXIT_DEAD
    release_task(k, leader)


def replace_key(table: dict[Task, None], old: Task, new: Task) -> None:
    """Put ``new`` where ``old`` was in an ordered set (list_replace on a kernel list)."""
    keys = [new if key is old else key for key in table]
    table.clear()
    table.update(dict.fromkeys(keys))


@traced
def begin_new_exec(k: Machine, me: Task, mm: MmStruct, filename: str) -> None:
    """Past de_thread(): the task is alone in its group; drop everything of the old program."""
    assert me.fs is not None
    me.fs.in_exec = False
    unshare_files(k, me)
    exec_mmap(k, me, mm)
    unshare_sighand(k, me)
    me.flags &= ~(PF_RANDOMIZE | PF_FORKNOEXEC | PF_NOFREEZE | PF_NO_SETAFFINITY)
    assert me.files is not None
    do_close_on_exec(k, me.files)
    me.comm = filename.rstrip("/").rsplit("/", 1)[-1][: TASK_COMM_LEN - 1]
    me.self_exec_id += 1
    assert me.sighand is not None
    flush_signal_handlers(me.sighand, force_default=False)
    me.sas_ss_sp = me.sas_ss_size = 0


def unshare_files(k: Machine, me: Task) -> None:
    """The files table is never shared across exec."""
    files = me.files
    if files is None or files.count == 1:
        return
    new: FilesStruct = dup_fd(k, me, files)
    me.files = new
    put_files_struct(k, files)


@traced
def exec_mmap(k: Machine, me: Task, mm: MmStruct) -> None:
    """Switch to the new mm; the old one's release clears the child tid and frees a vfork parent."""
    old = me.mm
    if old is not None:
        mm_release(k, me, old)
    elif me.vfork_done is not None:
        complete_vfork_done(k, me)
    me.mm = me.active_mm = mm
    mm.owner = me
    if old is not None:
        if old.owner is me:
            old.owner = None
        mmput(k, old)


def unshare_sighand(k: Machine, me: Task) -> None:
    """A handler table shared by CLONE_SIGHAND (but not a thread group) becomes private."""
    old = me.sighand
    assert old is not None
    if old.count == 1:
        return
    k.kmem_cache_alloc(me, "sighand_cache")
    me.sighand = SighandStruct(old.action)
    cleanup_sighand(k, old)


@traced
def setup_new_exec(k: Machine, me: Task, mm: MmStruct, argv: tuple[str, ...], envp: tuple[str, ...]) -> None:
    """Lay out the new address space and the registers the program starts with."""
    text = ELF_ET_DYN_BASE
    data = text + TEXT_PAGES * PAGE
    stack_end = STACK_TOP
    stack_start = stack_end - STACK_PAGES * PAGE
    layout = (
        (text, data, VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC, me.comm),
        (data, data + DATA_PAGES * PAGE, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC, me.comm),
        (stack_start, stack_end, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_GROWSDOWN, "[stack]"),
    )
    for start, end, flags, name in layout:
        vm_area_alloc(k, None, anon=True)
        mm.insert_vma(Vma(start, end, flags, name))
    mm.exe_path = me.comm
    mm.rss_file = TEXT_PAGES
    # The strings of argv and envp at the top of the stack, as the ELF loader leaves them.
    strings = b"".join(s.encode() + b"\0" for s in (*argv, *envp))
    copy_to_user(mm, stack_end - len(strings), strings)
    sp = (stack_end - len(strings) - 8) & ~0xF
    me.thread.regs = PtRegs(ip=text + 0x1040, sp=sp)
    me.thread.fsbase = 0
