"""The system call table (arch/x86/entry/syscalls/syscall_64.tbl) and the SYSCALL_DEFINE
wrappers: raw C arguments, pointers into the caller's memory, an int result.

Each wrapper copies its structures in and out of user memory and calls the kernel function
that the high-level API calls too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel import exec as kexec
from forklab.kernel import exit as kexit
from forklab.kernel import fork, pidfd, ptrace, sys
from forklab.kernel.errors import KernelError
from forklab.kernel.fs import open as fsopen
from forklab.kernel.fs import pipe
from forklab.kernel.fs.namei import do_mkdirat, do_rmdir
from forklab.kernel.fs.namespace import do_mount
from forklab.kernel.mm import mmap
from forklab.kernel.mm.mm import access_ok, copy_from_user, copy_to_user, get_user_u32, get_user_u64, put_user_u32
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_SID
from forklab.kernel.sched import syscalls as sched
from forklab.kernel.sched.syscalls import UserIn
from forklab.kernel.signal import do_sigaction, do_tkill, kill_something_info, sigprocmask
from forklab.uapi import errno as E
from forklab.uapi.sched import SCHED_ATTR_LAYOUT

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

PATH_MAX = 4096
UTS_FIELD = 65


def strncpy_from_user(current: Task, addr: int, limit: int = PATH_MAX) -> str:
    """A NUL-terminated string from user memory; ENAMETOOLONG without a NUL within ``limit``."""
    out = bytearray()
    while len(out) < limit:
        chunk = copy_from_user(current.mm, addr + len(out), 1)
        if chunk == b"\0":
            return out.decode(errors="surrogateescape")
        out += chunk
    raise KernelError(E.ENAMETOOLONG, "strncpy_from_user: no terminating NUL within the limit")


def user_string_array(current: Task, addr: int) -> tuple[str, ...]:
    """argv/envp: a NULL-terminated array of string pointers (a NULL array is empty)."""
    result: list[str] = []
    while addr:
        ptr = get_user_u64(current.mm, addr + 8 * len(result))
        if not ptr:
            break
        result.append(strncpy_from_user(current, ptr))
    return tuple(result)


def _waitid(k: Machine, current: Task, which: int, upid: int, infop: int, options: int, rusage: int = 0) -> int:
    info = kexit.kernel_waitid(k, current, to_int32(which), to_int32(upid), to_int32(options) & 0xFFFFFFFF)
    if infop:
        fields = (info.si_signo, 0, info.si_code, 0, info.si_pid, info.si_uid, info.si_status)
        copy_to_user(current.mm, infop, b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in fields))
    return 0


def _wait4(k: Machine, current: Task, pid: int, stat_addr: int, options: int, rusage: int) -> int:
    ret, status = kexit.kernel_wait4(k, current, to_int32(pid), to_int32(options) & 0xFFFFFFFF)
    if ret > 0 and stat_addr:
        put_user_u32(current.mm, stat_addr, status)
    return ret


def _pipe(k: Machine, current: Task, fds_addr: int) -> int:
    rfd, wfd = pipe.do_pipe2(k, current, 0)
    copy_to_user(current.mm, fds_addr, rfd.to_bytes(4, "little") + wfd.to_bytes(4, "little"))
    return 0


def _read(k: Machine, current: Task, fd: int, buf: int, count: int) -> int:
    data = fsopen.ksys_read(k, current, fd, count)
    copy_to_user(current.mm, buf, data)
    return len(data)


def _write(k: Machine, current: Task, fd: int, buf: int, count: int) -> int:
    return fsopen.ksys_write(k, current, fd, copy_from_user(current.mm, buf, count))


def _uname(k: Machine, current: Task, addr: int) -> int:
    fields = sys.sys_uname(k, current)
    raw = b"".join(f.encode()[: UTS_FIELD - 1].ljust(UTS_FIELD, b"\0") for f in fields)
    copy_to_user(current.mm, addr, raw)
    return 0


def _getcwd(k: Machine, current: Task, buf: int, size: int) -> int:
    path = fsopen.ksys_getcwd(k, current).encode() + b"\0"
    if len(path) > size:
        raise KernelError(E.ERANGE, "getcwd: the buffer is too small")
    copy_to_user(current.mm, buf, path)
    return len(path)


def _rt_sigaction(k: Machine, current: Task, sig: int, act: int, oact: int, sigsetsize: int) -> int:
    if sigsetsize != 8:
        raise KernelError(E.EINVAL, "rt_sigaction: sigsetsize must be 8")
    new = None
    if act:
        raw = copy_from_user(current.mm, act, 32)
        handler, flags, _restorer, mask = (int.from_bytes(raw[i : i + 8], "little") for i in range(0, 32, 8))
        new = (handler, flags, mask)
    old = do_sigaction(k, current, sig, new)
    if oact:
        handler, flags, mask = old
        copy_to_user(current.mm, oact, b"".join(v.to_bytes(8, "little") for v in (handler, flags, 0, mask)))
    return 0


def _rt_sigprocmask(k: Machine, current: Task, how: int, set_addr: int, oset: int, sigsetsize: int) -> int:
    if sigsetsize != 8:
        raise KernelError(E.EINVAL, "rt_sigprocmask: sigsetsize must be 8")
    newset = get_user_u64(current.mm, set_addr) if set_addr else None
    old = sigprocmask(k, current, how, newset)
    if oset:
        copy_to_user(current.mm, oset, old.to_bytes(8, "little"))
    return 0


def _prlimit64(k: Machine, current: Task, pid: int, resource: int, new_addr: int, old_addr: int) -> int:
    if pid:
        raise KernelError(E.ESRCH, "prlimit64: only the caller itself (pid 0) is modelled")
    new = None
    if new_addr:
        raw = copy_from_user(current.mm, new_addr, 16)
        new = (int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little"))
    old = sys.do_prlimit(k, current, current, resource, new)
    if old_addr:
        copy_to_user(current.mm, old_addr, old[0].to_bytes(8, "little") + old[1].to_bytes(8, "little"))
    return 0


def _setgroups(k: Machine, current: Task, size: int, addr: int) -> int:
    if size < 0 or size > sys.NGROUPS_MAX:
        raise KernelError(E.EINVAL, "setgroups: bad size")
    raw = copy_from_user(current.mm, addr, 4 * size)
    sys.sys_setgroups(k, current, [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 4 * size, 4)])
    return 0


def _sethostname(k: Machine, current: Task, addr: int, length: int) -> int:
    if length < 0 or length > 64:
        raise KernelError(E.EINVAL, "sethostname: longer than 64 bytes")
    sys.sys_sethostname(k, current, copy_from_user(current.mm, addr, length).decode(errors="replace"))
    return 0


def _execve(k: Machine, current: Task, path: int, argv: int, envp: int) -> int:
    return kexec.do_execve(
        k, current, strncpy_from_user(current, path), user_string_array(current, argv), user_string_array(current, envp)
    )


def _exit(k: Machine, current: Task, code: int) -> int:
    kexit.do_exit(k, current, (code & 0xFF) << 8)
    return 0


def _exit_group(k: Machine, current: Task, code: int) -> int:
    kexit.do_group_exit(k, current, (code & 0xFF) << 8)
    return 0


def _mount(k: Machine, current: Task, source: int, target: int, fstype: int, flags: int, data: int) -> int:
    do_mount(k, current, strncpy_from_user(current, source), strncpy_from_user(current, target),
             strncpy_from_user(current, fstype))  # fmt: skip
    return 0


def _mmap(k: Machine, current: Task, addr: int, length: int, prot: int, flags: int, fd: int, off: int) -> int:
    return mmap.do_mmap(k, current, addr, length, prot, flags)


def _munmap(k: Machine, current: Task, addr: int, length: int) -> int:
    assert current.mm is not None
    mmap.do_munmap(k, current, current.mm, addr, length)
    return 0


def user_u32(current: Task, addr: int) -> UserIn[int]:
    """A pointer to an int argument, read when the kernel reads it (None for NULL)."""
    return (lambda: get_user_u32(current.mm, addr)) if addr else None


def _sched_setattr(k: Machine, current: Task, pid: int, uattr: int, flags: int) -> int:
    reader = (lambda: sched.sched_copy_attr(current, uattr)) if uattr else None
    sched.sys_sched_setattr(k, current, to_int32(pid), reader, flags & 0xFFFFFFFF)
    return 0


def _sched_getattr(k: Machine, current: Task, pid: int, uattr: int, usize: int, flags: int) -> int:
    if not uattr:
        raise KernelError(E.EINVAL, "sched_getattr: NULL attr")
    usize &= 0xFFFFFFFF
    kattr = sched.sys_sched_getattr(k, current, to_int32(pid), usize, flags & 0xFFFFFFFF)
    if not access_ok(uattr, usize):
        raise KernelError(E.EFAULT, "sched_getattr: the buffer is not in user space")
    copy_to_user(current.mm, uattr, struct.pack(SCHED_ATTR_LAYOUT, *kattr)[: kattr.size])
    return 0


def _sched_getparam(k: Machine, current: Task, pid: int, param: int) -> int:
    if not param:
        raise KernelError(E.EINVAL, "sched_getparam: NULL param")
    put_user_u32(current.mm, param, sched.sys_sched_getparam(k, current, to_int32(pid)))
    return 0


def to_int32(value: int) -> int:
    """An int argument as the kernel sees it: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


Syscall = Callable[..., int]


def zero(fn: Callable[..., None]) -> Syscall:
    """A kernel function that returns nothing, as a system call that returns 0."""

    def call(*args: int) -> int:
        fn(*args)
        return 0

    return call


SYSCALLS: dict[str, Syscall] = {
    "fork": fork.sys_fork,
    "vfork": fork.sys_vfork,
    "clone": fork.sys_clone,
    "clone3": fork.sys_clone3,
    "execve": _execve,
    "exit": _exit,
    "exit_group": _exit_group,
    "wait4": _wait4,
    "waitid": _waitid,
    "ptrace": lambda k, c, request, pid, addr=0, data=0: ptrace.sys_ptrace(
        k, c, to_int32(request), to_int32(pid), addr, data
    ),
    "pidfd_open": lambda k, c, pid, flags: pidfd.sys_pidfd_open(k, c, to_int32(pid), flags & 0xFFFFFFFF),
    "pidfd_send_signal": lambda k, c, fd, sig, info=0, flags=0: pidfd.sys_pidfd_send_signal(
        k, c, to_int32(fd), to_int32(sig), info, flags & 0xFFFFFFFF
    ),
    "sched_setattr": _sched_setattr,
    "sched_getattr": _sched_getattr,
    "sched_setscheduler": lambda k, c, pid, policy, param: zero(sched.sys_sched_setscheduler)(
        k, c, to_int32(pid), to_int32(policy), user_u32(c, param)
    ),
    "sched_getscheduler": lambda k, c, pid: sched.sys_sched_getscheduler(k, c, to_int32(pid)),
    "sched_setparam": lambda k, c, pid, param: zero(sched.sys_sched_setparam)(k, c, to_int32(pid), user_u32(c, param)),
    "sched_getparam": _sched_getparam,
    "sched_get_priority_max": lambda k, c, policy: sched.sys_sched_get_priority_max(k, c, to_int32(policy)),
    "sched_get_priority_min": lambda k, c, policy: sched.sys_sched_get_priority_min(k, c, to_int32(policy)),
    "setpriority": lambda k, c, which, who, prio: zero(sys.sys_setpriority)(
        k, c, to_int32(which), to_int32(who), to_int32(prio)
    ),
    "getpriority": lambda k, c, which, who: sys.sys_getpriority(k, c, to_int32(which), to_int32(who)),
    "getpid": sys.sys_getpid,
    "gettid": sys.sys_gettid,
    "getppid": sys.sys_getppid,
    "getuid": sys.sys_getuid,
    "geteuid": sys.sys_geteuid,
    "getgid": sys.sys_getgid,
    "getegid": sys.sys_getegid,
    "setresuid": zero(sys.sys_setresuid),
    "setresgid": zero(sys.sys_setresgid),
    "setgroups": _setgroups,
    "setsid": sys.ksys_setsid,
    "setpgid": lambda k, c, pid, pgid: zero(sys.ksys_setpgid)(k, c, to_int32(pid), to_int32(pgid)),
    "getpgid": lambda k, c, pid: sys.getpgid_or_sid(k, c, to_int32(pid), PIDTYPE_PGID),
    "getsid": lambda k, c, pid: sys.getpgid_or_sid(k, c, to_int32(pid), PIDTYPE_SID),
    "prlimit64": _prlimit64,
    "unshare": zero(fork.ksys_unshare),
    "open": lambda k, c, path, flags, mode=0: fsopen.do_sys_open(k, c, strncpy_from_user(c, path), flags, mode),
    "close": zero(fsopen.ksys_close),
    "dup": fsopen.ksys_dup,
    "fcntl": fsopen.do_fcntl,
    "read": _read,
    "write": _write,
    "lseek": fsopen.ksys_lseek,
    "pipe": _pipe,
    "chdir": lambda k, c, path: zero(fsopen.ksys_chdir)(k, c, strncpy_from_user(c, path)),
    "getcwd": _getcwd,
    "umask": fsopen.ksys_umask,
    "rt_sigaction": _rt_sigaction,
    "rt_sigprocmask": _rt_sigprocmask,
    "sethostname": _sethostname,
    "uname": _uname,
    "mmap": _mmap,
    "munmap": _munmap,
    "madvise": zero(mmap.do_madvise),
    "mount": _mount,
    "kill": lambda k, c, pid, sig: zero(kill_something_info)(k, c, to_int32(sig), to_int32(pid)),
    "tgkill": lambda k, c, tgid, tid, sig: zero(do_tkill)(k, c, to_int32(tgid), to_int32(tid), to_int32(sig)),
    "mkdir": lambda k, c, path, mode: zero(do_mkdirat)(k, c, strncpy_from_user(c, path), mode),
    "rmdir": lambda k, c, path: zero(do_rmdir)(k, c, strncpy_from_user(c, path)),
}
