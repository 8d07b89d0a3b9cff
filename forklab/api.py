"""The public API: boot a model, take a task, make its system calls.

    k = forklab.boot()              # 6.18, 2 CPUs, seed 0
    init = k.task(1)
    pid = init.fork()
    k.task(pid).exit(3)
    init.wait4(-1, 0)               # (pid, 0x300)

A method of a task handle is that task's system call. It returns what the call returns, or
raises ``SyscallError`` (an ``OSError``) with the kernel's errno and the check that refused.
``t.syscall(name, *args)`` is the raw form: C arguments, ``-errno`` on failure. A call that
sleeps in the kernel returns a ``Pending`` whose result arrives when the task is woken; until
then the task's calls raise ``TaskBlocked``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from forklab.kernel import exec as kexec
from forklab.kernel import exit as kexit
from forklab.kernel import fork, sys
from forklab.kernel import pidfd as kpidfd
from forklab.kernel import ptrace as kptrace
from forklab.kernel.errors import KernelError
from forklab.kernel.exit import KernelPanic
from forklab.kernel.fs import open as fsopen
from forklab.kernel.fs import pipe
from forklab.kernel.fs.namei import do_mkdirat, do_rmdir
from forklab.kernel.fs.namespace import do_mount
from forklab.kernel.invariants import all_tasks, check
from forklab.kernel.machine import Machine
from forklab.kernel.main import kthread_create, start_kernel
from forklab.kernel.mm import mmap
from forklab.kernel.mm.mm import copy_from_user, copy_to_user
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_SID, find_task_by_pid_ns, pid_nr_ns
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.sched import syscalls as ksched
from forklab.kernel.signal import do_sigaction, sigprocmask
from forklab.kernel.syscall import PendingCall, TaskGone, alive, invoke
from forklab.kernel.syscall_table import SYSCALLS
from forklab.kernel.task import PF_KTHREAD, TASK_RUNNING, Task, task_state_letter
from forklab.kernel.trace import TraceEvent, trace_text
from forklab.kernel.version import DEFAULT_VERSION
from forklab.uapi import errno as E
from forklab.uapi.fcntl import O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY
from forklab.uapi.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from forklab.uapi.sched import CLONE_ARGS_FIELDS, SCHED_ATTR_SIZE_VER1, SchedAttr, pack_sched_attr
from forklab.uapi.wait import WaitidInfo

__all__ = ["Kernel", "KernelPanic", "Pending", "SyscallError", "TaskBlocked", "TaskGoneError", "TaskHandle", "boot"]

DEFAULT_MEMORY = 16 << 30


def unchanged(value: Any) -> Any:
    """A call's result as the kernel returned it (most calls' conversion)."""
    return value


class SyscallError(OSError):
    """A system call failed: ``errno`` is the kernel's, ``reason`` names the check that refused."""

    def __init__(self, errno: int, reason: str, unwound_from: str | None = None) -> None:
        super().__init__(errno, f"{E.strerror(errno)} [{E.name(errno)}] ({reason})")
        self.reason = reason
        self.errno_name = E.name(errno)
        # For a failed clone: the bad_fork_* label copy_process unwound from.
        self.unwound_from = unwound_from


class TaskBlocked(RuntimeError):
    """The task is asleep in the kernel (or stopped): it cannot make a call until it is woken."""


class TaskGoneError(ProcessLookupError):
    """The task has exited (or died during the call)."""


class Pending:
    """The result of a call that is asleep in the kernel; filled in when the task is woken."""

    def __init__(self, call: PendingCall, convert: Callable[[Any], Any]) -> None:
        self._call = call
        self._convert = convert

    def __repr__(self) -> str:
        if not self.done:
            return f"<Pending {self._call.name}: asleep>"
        if self._call.gone:
            return f"<Pending {self._call.name}: the task died in it>"
        return (
            f"<Pending {self._call.name}: {self.result()!r}>"
            if not self._call.errno
            else f"<Pending {self._call.name}: errno {self._call.errno}>"
        )

    @property
    def done(self) -> bool:
        return self._call.done

    @property
    def name(self) -> str:
        return self._call.name

    def result(self) -> Any:
        """The call's result; raises TaskBlocked if it is still asleep, SyscallError if it failed,
        TaskGoneError if the task died in it."""
        call = self._call
        if not call.done:
            raise TaskBlocked(f"{call.name} is still asleep in the kernel")
        if call.gone:
            raise TaskGoneError(f"the task died in {call.name}: it never returned")
        if call.errno:
            raise SyscallError(call.errno, f"{call.name} failed after sleeping")
        return self._convert(call.value)


def boot(
    version: str = DEFAULT_VERSION,
    cpus: int = 2,
    seed: int = 0,
    memory: int = DEFAULT_MEMORY,
    trace: bool = True,
) -> Kernel:
    """A freshly booted model: swapper (pid 0), /sbin/init (pid 1) and kthreadd (pid 2)."""
    return Kernel(start_kernel(version, cpus, seed, memory, trace))


class Kernel:
    """A booted model: find tasks, read the trace, check the invariants."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def __repr__(self) -> str:
        k = self.machine
        return f"<forklab kernel {k.version.text} cpus={k.nr_cpu_ids} tasks={k.nr_threads}>"

    @property
    def version(self) -> str:
        return self.machine.version.text

    def task(self, pid: int) -> TaskHandle:
        """The task with this pid in the initial pid namespace."""
        task = find_task_by_pid_ns(pid, self.machine.init_pid_ns)
        if task is None:
            raise TaskGoneError(f"no task has pid {pid}")
        return TaskHandle(self, task, None)

    def tasks(self) -> list[TaskHandle]:
        """Every task with a pid (threads and zombies included), in pid order."""
        return [TaskHandle(self, t, None) for t in all_tasks(self.machine) if t.pid]

    def trace_text(self) -> str:
        """The tracepoint lines recorded so far, formatted as /sys/kernel/tracing/trace."""
        return trace_text(self.machine)

    def trace_events(self) -> list[TraceEvent]:
        return list(self.machine.trace)

    def clear_trace(self) -> None:
        self.machine.trace.clear()

    def check(self) -> None:
        """Raise if any invariant of the model is broken."""
        check(self.machine)

    def counts(self) -> dict[str, int]:
        """Live objects per slab cache and the global counters: equal before and after a
        sequence that reaps everything it made."""
        k = self.machine
        counts = {f"slab:{name}": value for name, value in sorted(k.slab.items()) if value}
        counts.update(nr_threads=k.nr_threads, processes=len(k.tasks), ucounts=len(k.ucounts.entries))
        return counts

    def kthread_create(self, name: str) -> TaskHandle:
        """Ask kthreadd for a kernel thread; returns it once made."""
        before = {t.pid for t in all_tasks(self.machine)}
        kthread_create(self.machine, name)
        made = [t for t in all_tasks(self.machine) if t.pid not in before]
        return TaskHandle(self, made[-1], None)

    @property
    def console(self) -> str:
        return self.machine.console.decode(errors="replace")


class TaskHandle:
    """One task; its methods are its system calls."""

    __slots__ = ("_k", "_ns", "_task", "_viewer", "_viewer_ns", "kernel")

    def __init__(self, kernel: Kernel, task: Task, viewer: TaskHandle | None) -> None:
        self.kernel = kernel
        self._k = kernel.machine
        self._task = task
        # Kept: a task may die (or exec away its pid) while its handle is in use.
        self._ns = task_active_pid_ns(task)
        self._viewer = viewer._task if viewer is not None else kernel.machine.init_task
        self._viewer_ns = viewer._ns if viewer is not None else kernel.machine.init_pid_ns

    def __repr__(self) -> str:
        return f"<task {self.comm} pid={self.pid} state={self.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other._task is self._task

    def __hash__(self) -> int:
        return id(self._task)

    # ---- what /proc would tell --------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The thread id in the initial pid namespace."""
        return self._task.pid

    @property
    def tgid(self) -> int:
        return self._task.tgid

    @property
    def comm(self) -> str:
        return self._task.comm

    @property
    def state(self) -> str:
        """One letter, as ps shows it: R, S, D, T, Z, X."""
        return task_state_letter(self._task)

    @property
    def alive(self) -> bool:
        return alive(self._task)

    @property
    def task_struct(self) -> Task:
        """The model's task_struct itself, for inspection."""
        return self._task

    def status(self) -> dict[str, str]:
        """/proc/<pid>/status as fields; pids and ids as the viewer sees them (init, for k.task)."""
        from forklab.kernel.fs.proc import proc_pid_status

        k = self._k
        saved = k.current
        k.current = self._viewer
        try:
            text = proc_pid_status(k, self._task, self._viewer_ns, self._viewer.cred.user_ns)
        finally:
            k.current = saved
        fields: dict[str, str] = {}
        for line in text.splitlines():
            name, _, value = line.partition(":\t")
            fields[name] = value
        return fields

    def regs(self) -> dict[str, int]:
        """The user-mode registers the task will return to user space with (fs_base included)."""
        thread = self._task.thread
        if thread.regs is None:
            raise TaskBlocked(f"{self._task.comm} is a kernel thread: it has no user-mode registers")
        regs = thread.regs.as_dict()
        regs["fs_base"] = thread.fsbase
        return regs

    def task(self, pid: int) -> TaskHandle:
        """The task that ``pid`` names for this task (its pid namespace)."""
        task = find_task_by_pid_ns(pid, self._ns)
        if task is None:
            raise TaskGoneError(f"no task has pid {pid} in {self.comm}'s pid namespace")
        return TaskHandle(self.kernel, task, self)

    def pid_in(self, other: TaskHandle) -> int:
        """This task's pid as ``other`` sees it (0 if invisible there)."""
        return pid_nr_ns(self._task.thread_pid, other._ns)

    # ---- making calls -------------------------------------------------------------------------

    def _ready(self) -> None:
        k, task = self._k, self._task
        if k.panicked:
            raise KernelPanic(k.panicked)
        if not alive(task):
            raise TaskGoneError(f"{task.comm} (pid {task.pid}) has exited")
        if task.flags & PF_KTHREAD:
            raise TaskBlocked(f"{task.comm} is a kernel thread: it makes no system calls")
        if task.pending_call is not None or task.state != TASK_RUNNING:
            what = task.pending_call.name if task.pending_call is not None else "stopped"
            raise TaskBlocked(f"{task.comm} (pid {task.pid}) is asleep in the kernel ({what})")

    def _call(self, name: str, body: Callable[[Machine, Task], Any], convert: Callable[[Any], Any] = unchanged) -> Any:
        self._ready()
        k, task = self._k, self._task
        try:
            result = invoke(k, task, name, lambda: body(k, task))
        except KernelError as err:
            raise SyscallError(err.errno, err.reason, err.unwound_from) from None
        except TaskGone:
            if name in ("exit", "exit_group"):
                return None
            raise TaskGoneError(f"{task.comm} (pid {task.pid}) died during {name}") from None
        if isinstance(result, PendingCall):
            if result.done:
                # It slept, and what it waited for happened before control came back.
                if result.gone and name in ("exit", "exit_group"):
                    return None
                return Pending(result, convert).result()
            if result.known is not None:
                return convert(result.known)
            return Pending(result, convert)
        return result if convert is unchanged else convert(result)

    def syscall(self, name: str, *args: int) -> int | Pending:
        """The raw system call: C arguments (pointers into this task's memory); -errno on failure."""
        entry = SYSCALLS.get(name)
        if entry is None:
            return -E.ENOSYS
        try:
            return self._call(name, lambda k, t: entry(k, t, *args))  # type: ignore[no-any-return]
        except SyscallError as err:
            return -(err.errno or E.EIO)

    # ---- process creation ---------------------------------------------------------------------

    def fork(self) -> int:
        return self._call("fork", fork.sys_fork)  # type: ignore[no-any-return]

    def vfork(self) -> int:
        """The child's pid, at once; this task stays in D until the child execs or exits."""
        return self._call("vfork", fork.sys_vfork)  # type: ignore[no-any-return]

    def clone(self, flags: int, stack: int = 0, parent_tid: int = 0, child_tid: int = 0, tls: int = 0) -> int:
        return self._call(  # type: ignore[no-any-return]
            "clone", lambda k, t: fork.sys_clone(k, t, flags, stack, parent_tid, child_tid, tls)
        )

    def clone3(
        self,
        flags: int = 0,
        pidfd: int = 0,
        child_tid: int = 0,
        parent_tid: int = 0,
        exit_signal: int = 0,
        stack: int = 0,
        stack_size: int = 0,
        tls: int = 0,
        set_tid: Iterable[int] = (),
        cgroup: int = 0,
    ) -> int:
        values = dict(zip(CLONE_ARGS_FIELDS, (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
                                              tls, 0, 0, cgroup), strict=True))  # fmt: skip
        tids = tuple(set_tid)
        return self._call("clone3", lambda k, t: fork.clone3_from_values(k, t, values, tids))  # type: ignore[no-any-return]

    def execve(self, path: str, argv: Iterable[str] = (), envp: Iterable[str] = ()) -> Pending | None:
        """None once the new program runs; a Pending while it waits (for other threads to die,
        or in a ptrace exec stop)."""
        args, env = tuple(argv), tuple(envp)
        return self._call("execve", lambda k, t: kexec.do_execve(k, t, path, args, env), lambda v: None)  # type: ignore[no-any-return]

    def exit(self, status: int = 0) -> Pending | None:
        """None; a Pending if the exit has to wait (a ptrace exit stop, a namespace's init)."""
        return self._call("exit", lambda k, t: kexit.do_exit(k, t, (status & 0xFF) << 8))  # type: ignore[no-any-return]

    def exit_group(self, status: int = 0) -> Pending | None:
        return self._call("exit_group", lambda k, t: kexit.do_group_exit(k, t, (status & 0xFF) << 8))  # type: ignore[no-any-return]

    def wait4(self, pid: int = -1, options: int = 0) -> tuple[int, int] | Pending:
        """(pid, status); (0, 0) under WNOHANG if nothing is ready; a Pending if it sleeps."""
        return self._call("wait4", lambda k, t: kexit.kernel_wait4(k, t, pid, options))  # type: ignore[no-any-return]

    def waitid(self, idtype: int, id: int, options: int) -> WaitidInfo | Pending:
        """The siginfo of a child that changed state: (si_pid, si_uid, si_signo, si_status, si_code);
        all zero under WNOHANG if none has; a Pending if it sleeps."""
        return self._call("waitid", lambda k, t: kexit.kernel_waitid(k, t, idtype, id, options))  # type: ignore[no-any-return]

    def ptrace(self, request: int, pid: int, addr: int = 0, data: int = 0) -> int | Pending:
        """PTRACE_GETEVENTMSG writes the message to ``data``, an address in this task's memory. A
        Pending if the caller stopped on its way out (a traced tracer told of its tracee's trap)."""
        return self._call("ptrace", lambda k, t: kptrace.sys_ptrace(k, t, request, pid, addr, data))  # type: ignore[no-any-return]

    def pidfd_open(self, pid: int, flags: int = 0) -> int:
        return self._call("pidfd_open", lambda k, t: kpidfd.sys_pidfd_open(k, t, pid, flags))  # type: ignore[no-any-return]

    def pidfd_send_signal(self, pidfd: int, sig: int, flags: int = 0) -> Pending | None:
        """None; a Pending if the caller stopped on its way out (it signalled its own group)."""
        return self._call(  # type: ignore[no-any-return]
            "pidfd_send_signal", lambda k, t: kpidfd.sys_pidfd_send_signal(k, t, pidfd, sig, 0, flags), lambda v: None
        )

    def unshare(self, flags: int) -> None:
        self._call("unshare", lambda k, t: fork.ksys_unshare(k, t, flags))

    # ---- identity and credentials ---------------------------------------------------------------

    def getpid(self) -> int:
        return self._call("getpid", sys.sys_getpid)  # type: ignore[no-any-return]

    def gettid(self) -> int:
        return self._call("gettid", sys.sys_gettid)  # type: ignore[no-any-return]

    def getppid(self) -> int:
        return self._call("getppid", sys.sys_getppid)  # type: ignore[no-any-return]

    def getuid(self) -> int:
        return self._call("getuid", sys.sys_getuid)  # type: ignore[no-any-return]

    def geteuid(self) -> int:
        return self._call("geteuid", sys.sys_geteuid)  # type: ignore[no-any-return]

    def getgid(self) -> int:
        return self._call("getgid", sys.sys_getgid)  # type: ignore[no-any-return]

    def getegid(self) -> int:
        return self._call("getegid", sys.sys_getegid)  # type: ignore[no-any-return]

    def getresuid(self) -> tuple[int, int, int]:
        return self._call("getresuid", sys.getresuid)  # type: ignore[no-any-return]

    def getresgid(self) -> tuple[int, int, int]:
        return self._call("getresgid", sys.getresgid)  # type: ignore[no-any-return]

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self._call("setresuid", lambda k, t: sys.sys_setresuid(k, t, ruid, euid, suid))

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self._call("setresgid", lambda k, t: sys.sys_setresgid(k, t, rgid, egid, sgid))

    def setgroups(self, groups: Iterable[int]) -> None:
        gids = list(groups)
        self._call("setgroups", lambda k, t: sys.sys_setgroups(k, t, gids))

    def setsid(self) -> int:
        return self._call("setsid", sys.ksys_setsid)  # type: ignore[no-any-return]

    def setpgid(self, pid: int, pgid: int) -> None:
        self._call("setpgid", lambda k, t: sys.ksys_setpgid(k, t, pid, pgid))

    def getpgid(self, pid: int = 0) -> int:
        return self._call("getpgid", lambda k, t: sys.getpgid_or_sid(k, t, pid, PIDTYPE_PGID))  # type: ignore[no-any-return]

    def getsid(self, pid: int = 0) -> int:
        return self._call("getsid", lambda k, t: sys.getpgid_or_sid(k, t, pid, PIDTYPE_SID))  # type: ignore[no-any-return]

    def getrlimit(self, resource: int) -> tuple[int, int]:
        return self._call("getrlimit", lambda k, t: sys.do_prlimit(k, t, t, resource, None))  # type: ignore[no-any-return]

    def setrlimit(self, resource: int, limits: tuple[int, int]) -> None:
        soft, hard = limits
        self._call("setrlimit", lambda k, t: sys.do_prlimit(k, t, t, resource, (soft, hard)))

    def prctl(self, option: int, arg2: int | str = 0) -> int | str:
        return self._call("prctl", lambda k, t: sys.sys_prctl(k, t, option, arg2))  # type: ignore[no-any-return]

    # ---- scheduling policy and nice value --------------------------------------------------------

    def sched_setattr(
        self,
        pid: int,
        policy: int,
        flags: int = 0,
        nice: int = 0,
        priority: int = 0,
        runtime: int = 0,
        deadline: int = 0,
        period: int = 0,
        util_min: int = 0,
        util_max: int = 0,
        size: int = SCHED_ATTR_SIZE_VER1,
    ) -> None:
        """struct sched_attr field by field; ``size`` is its size field (0 means the first version)."""
        raw = pack_sched_attr((size, policy, flags, nice, priority, runtime, deadline, period, util_min, util_max))

        def copy_in() -> SchedAttr:
            return ksched.sched_attr_from(size & 0xFFFFFFFF, lambda usize: raw[:usize].ljust(len(raw), b"\0"))

        self._call("sched_setattr", lambda k, t: ksched.sys_sched_setattr(k, t, pid, copy_in, 0))

    def sched_getattr(self, pid: int = 0, size: int = SCHED_ATTR_SIZE_VER1) -> SchedAttr:
        return self._call("sched_getattr", lambda k, t: ksched.sys_sched_getattr(k, t, pid, size, 0))  # type: ignore[no-any-return]

    def sched_setscheduler(self, pid: int, policy: int, priority: int = 0) -> None:
        """``policy`` may carry SCHED_RESET_ON_FORK."""
        self._call(
            "sched_setscheduler", lambda k, t: ksched.sys_sched_setscheduler(k, t, pid, policy, lambda: priority)
        )

    def sched_getscheduler(self, pid: int = 0) -> int:
        """The policy, with SCHED_RESET_ON_FORK if the task has it."""
        return self._call("sched_getscheduler", lambda k, t: ksched.sys_sched_getscheduler(k, t, pid))  # type: ignore[no-any-return]

    def sched_setparam(self, pid: int, priority: int) -> None:
        self._call("sched_setparam", lambda k, t: ksched.sys_sched_setparam(k, t, pid, lambda: priority))

    def sched_getparam(self, pid: int = 0) -> int:
        """The real-time priority (0 unless SCHED_FIFO or SCHED_RR)."""
        return self._call("sched_getparam", lambda k, t: ksched.sys_sched_getparam(k, t, pid))  # type: ignore[no-any-return]

    def sched_get_priority_max(self, policy: int) -> int:
        return self._call("sched_get_priority_max", lambda k, t: ksched.sys_sched_get_priority_max(k, t, policy))  # type: ignore[no-any-return]

    def sched_get_priority_min(self, policy: int) -> int:
        return self._call("sched_get_priority_min", lambda k, t: ksched.sys_sched_get_priority_min(k, t, policy))  # type: ignore[no-any-return]

    def setpriority(self, which: int, who: int, prio: int) -> None:
        self._call("setpriority", lambda k, t: sys.sys_setpriority(k, t, which, who, prio))

    def getpriority(self, which: int, who: int = 0) -> int:
        """The nice value, as the C library gives it (the raw call returns 20 - nice)."""
        return self._call("getpriority", lambda k, t: sys.sys_getpriority(k, t, which, who), lambda v: 20 - v)  # type: ignore[no-any-return]

    # ---- files ----------------------------------------------------------------------------------

    def open(self, path: str, flags: int = O_RDONLY, mode: int = 0o644) -> int:
        return self._call("open", lambda k, t: fsopen.do_sys_open(k, t, path, flags, mode))  # type: ignore[no-any-return]

    def close(self, fd: int) -> None:
        self._call("close", lambda k, t: fsopen.ksys_close(k, t, fd))

    def dup(self, fd: int) -> int:
        return self._call("dup", lambda k, t: fsopen.ksys_dup(k, t, fd))  # type: ignore[no-any-return]

    def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        return self._call("fcntl", lambda k, t: fsopen.do_fcntl(k, t, fd, cmd, arg))  # type: ignore[no-any-return]

    def read(self, fd: int, n: int) -> bytes | Pending:
        return self._call("read", lambda k, t: fsopen.ksys_read(k, t, fd, n))  # type: ignore[no-any-return]

    def write(self, fd: int, data: bytes | str) -> int | Pending:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        return self._call("write", lambda k, t: fsopen.ksys_write(k, t, fd, raw))  # type: ignore[no-any-return]

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        return self._call("lseek", lambda k, t: fsopen.ksys_lseek(k, t, fd, offset, whence))  # type: ignore[no-any-return]

    def pipe(self) -> tuple[int, int]:
        return self._call("pipe", lambda k, t: pipe.do_pipe2(k, t, 0))  # type: ignore[no-any-return]

    def chdir(self, path: str) -> None:
        self._call("chdir", lambda k, t: fsopen.ksys_chdir(k, t, path))

    def getcwd(self) -> str:
        return self._call("getcwd", fsopen.ksys_getcwd)  # type: ignore[no-any-return]

    def umask(self, mask: int) -> int:
        return self._call("umask", lambda k, t: fsopen.ksys_umask(k, t, mask))  # type: ignore[no-any-return]

    def readlink(self, path: str) -> str:
        return self._call("readlink", lambda k, t: fsopen.ksys_readlink(k, t, path))  # type: ignore[no-any-return]

    def read_file(self, path: str) -> str:
        """open, read to the end, close: the whole text of a file (a /proc file, say)."""

        def body(k: Machine, t: Task) -> str:
            fd = fsopen.do_sys_open(k, t, path, O_RDONLY)
            chunks = []
            try:
                while chunk := fsopen.ksys_read(k, t, fd, 65536):
                    chunks.append(chunk)
            finally:
                fsopen.ksys_close(k, t, fd)
            return b"".join(chunks).decode(errors="replace")

        return self._call("read_file", body)  # type: ignore[no-any-return]

    def write_file(self, path: str, data: str | bytes | int) -> None:
        """open for writing, write, close (a /proc/<pid>/uid_map write, say); a number goes as
        its decimal text (a pid into cgroup.procs)."""
        raw = str(data).encode() if isinstance(data, int) else data.encode() if isinstance(data, str) else bytes(data)

        def body(k: Machine, t: Task) -> None:
            fd = fsopen.do_sys_open(k, t, path, O_WRONLY | O_CREAT | O_TRUNC)
            try:
                fsopen.ksys_write(k, t, fd, raw)
            finally:
                fsopen.ksys_close(k, t, fd)

        self._call("write_file", body)

    def mount(self, source: str, target: str, fstype: str) -> None:
        self._call("mount", lambda k, t: do_mount(k, t, source, target, fstype))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._call("mkdir", lambda k, t: do_mkdirat(k, t, path, mode))

    def rmdir(self, path: str) -> None:
        self._call("rmdir", lambda k, t: do_rmdir(k, t, path))

    # ---- signals --------------------------------------------------------------------------------

    def sigaction(self, sig: int, handler: int, flags: int = 0, mask: int = 0) -> int:
        """Install a handler (SIG_DFL, SIG_IGN, or any other number for a user handler); returns the old one."""
        old = self._call("sigaction", lambda k, t: do_sigaction(k, t, sig, (handler, flags, mask)))
        return int(old[0])

    def kill(self, pid: int, sig: int) -> Pending | None:
        """None; a Pending if the caller stopped on its way out (it signalled itself)."""
        from forklab.kernel.signal import kill_something_info

        return self._call("kill", lambda k, t: kill_something_info(k, t, sig, pid), lambda v: None)  # type: ignore[no-any-return]

    def tgkill(self, tgid: int, tid: int, sig: int) -> Pending | None:
        from forklab.kernel.signal import do_tkill

        return self._call("tgkill", lambda k, t: do_tkill(k, t, tgid, tid, sig), lambda v: None)  # type: ignore[no-any-return]

    def sigprocmask(self, how: int, sigset: int) -> int | Pending:
        """The old mask; a Pending if unblocking let a stop signal in."""
        return self._call("sigprocmask", lambda k, t: sigprocmask(k, t, how, sigset))  # type: ignore[no-any-return]

    # ---- uts --------------------------------------------------------------------------------------

    def sethostname(self, name: str) -> None:
        self._call("sethostname", lambda k, t: sys.sys_sethostname(k, t, name))

    def uname(self) -> tuple[str, str, str, str, str]:
        """(sysname, nodename, release, version, machine), shaped like os.uname()."""
        sysname, nodename, release, version, machine, _ = self._call("uname", sys.sys_uname)
        return sysname, nodename, release, version, machine

    # ---- memory -----------------------------------------------------------------------------------

    def mmap(self, length: int, prot: int = PROT_READ | PROT_WRITE, flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
             addr: int = 0) -> int:  # fmt: skip
        return self._call("mmap", lambda k, t: mmap.do_mmap(k, t, addr, length, prot, flags))  # type: ignore[no-any-return]

    def munmap(self, addr: int, length: int) -> None:
        self._call("munmap", lambda k, t: mmap.do_munmap(k, t, t.mm, addr, length))  # type: ignore[arg-type]

    def madvise(self, addr: int, length: int, advice: int) -> None:
        self._call("madvise", lambda k, t: mmap.do_madvise(k, t, addr, length, advice))

    def peek(self, addr: int, n: int) -> bytes:
        """Read this task's memory (as process_vm_readv would): EFAULT if not mapped readable."""
        try:
            return copy_from_user(self._task.mm, addr, n)
        except KernelError as err:
            raise SyscallError(err.errno, err.reason) from None

    def poke(self, addr: int, data: bytes) -> None:
        """Write this task's memory (copy-on-write applies): EFAULT if not mapped writable."""
        try:
            copy_to_user(self._task.mm, addr, bytes(data))
        except KernelError as err:
            raise SyscallError(err.errno, err.reason) from None

    def read_u32(self, addr: int) -> int:
        return int.from_bytes(self.peek(addr, 4), "little")

    def write_u32(self, addr: int, value: int) -> None:
        self.poke(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.peek(addr, 8), "little")

    def write_u64(self, addr: int, value: int) -> None:
        self.poke(addr, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))
