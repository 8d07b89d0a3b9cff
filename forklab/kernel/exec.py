"""fs/exec.c: replacing a task's program.

The model's programs are files that start with the ELF magic; executing one gives the task
a fresh address space laid out like a small PIE binary (text, data, stack), the file's base
name as comm, and everything exec resets: handlers, close-on-exec files, exit_signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cred import Cred, commit_creds, prepare_creds
from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.fs.file import FilesStruct, do_close_on_exec, dup_fd, put_files_struct
from forklab.kernel.fs.namei import path_lookup
from forklab.kernel.fs.vfs import ELF_MAGIC, MAY_EXEC, inode_permission
from forklab.kernel.mm.mm import (
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
    copy_to_user,
    mm_release,
    mmput,
    vm_area_alloc,
)
from forklab.kernel.signal import SighandStruct, cleanup_sighand, flush_signal_handlers
from forklab.kernel.task import (
    PF_FORKNOEXEC,
    PF_NO_SETAFFINITY,
    PF_NOFREEZE,
    PF_NPROC_EXCEEDED,
    PF_RANDOMIZE,
    TASK_COMM_LEN,
    PtRegs,
    Task,
)
from forklab.kernel.trace import trace_sched_process_exec
from forklab.kernel.ucount import UCOUNT_RLIMIT_NPROC, is_rlimit_overlimit
from forklab.kernel.user_namespace import make_kuid
from forklab.uapi import errno as E
from forklab.uapi.resource import RLIMIT_NPROC
from forklab.uapi.signal import SIGCHLD

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine

# Where a small PIE program lands when address randomization is off.
ELF_ET_DYN_BASE = 0x555555554000
TEXT_PAGES = 2
DATA_PAGES = 1
STACK_TOP = TASK_SIZE  # the stack ends where the user address space does
STACK_PAGES = 33
PAGE = 4096


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
    if current.signal.nr_threads > 1:
        raise NotModelled("execve in a multithreaded process (de_thread)")
    k.kmem_cache_alloc(current, "mm_struct")
    mm = MmStruct()
    try:
        k.kmem_cache_alloc(current, "pgd")
    except KernelError:
        k.kmem_cache_free("mm_struct")
        raise
    mm.pgd = True
    new_cred = bprm_creds_from_file(k, current)
    # The point of no return: from here the old program is gone.
    old_pid = current.pid
    begin_new_exec(k, current, mm, filename)
    commit_creds(k, current, new_cred)
    setup_new_exec(k, current, mm, argv, envp)
    trace_sched_process_exec(k, current, filename, old_pid)
    return 0


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


def begin_new_exec(k: Machine, me: Task, mm: MmStruct, filename: str) -> None:
    # de_thread() of a single-threaded task: nothing to kill, but the execution domain changes.
    me.exit_signal = SIGCHLD
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


def exec_mmap(k: Machine, me: Task, mm: MmStruct) -> None:
    """Switch to the new mm; the old one's release clears the child tid and frees a vfork parent."""
    old = me.mm
    if old is not None:
        mm_release(k, me, old)
    elif me.vfork_done is not None:
        from forklab.kernel.mm.mm import complete_vfork_done

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
