"""The two places a sequence runs: the model and the host kernel, behind one interface.

Both start the same way: task t0 is pid 1 of fresh user, pid, mount, uts and ipc
namespaces; ids 0..65535 map to a range of outer ids (never root); /proc shows that pid
namespace; fds 0-2 are /dev/null; the host name is "forklab"; a pids cgroup caps the tasks;
t0 has exec'd /sbin/init. Each side runs a step and reports an ``Outcome`` in the same terms.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Any

import forklab
from forklab.api import Pending, SyscallError, TaskBlocked, TaskGoneError, TaskHandle
from forklab.diff.calls import NONE, TASK, spec
from forklab.host import procfs
from forklab.host.cgroup import DELEGATED_FILES, V2Setup
from forklab.kernel.cgroup.cgroup import (
    PIDS,
    CssSet,
    bind_to_legacy,
    cgroup_mkdir,
    cgroup_subtree_control_write,
    move_task,
)
from forklab.kernel.cgroup.cgroupfs import cgroup_kn
from forklab.kernel.cgroup.pids import PidsCss
from forklab.kernel.trace import format_field
from forklab.uapi import errno as E
from forklab.uapi.resource import PRIO_PROCESS, RLIM_INFINITY, RLIM_NLIMITS
from forklab.uapi.sched import CLONE_NEWIPC, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS, CLONE_PARENT

OK = "ok"
ERROR = "error"
PENDING = "pending"  # the caller sleeps in the kernel; its result comes later
BLOCKED = "blocked"  # the caller was already asleep: the call was not made
GONE = "gone"  # the caller died in its own call (exit)
DEAD = "dead"  # the caller had exited before: the call was not made
UNBOUND = "unbound"  # a name this side never bound (an earlier step went differently)

SANDBOX_FLAGS = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC
ID_BASE = 100000
ID_RANGE = 65536


@dataclass
class Outcome:
    status: str
    value: Any = None  # what is compared
    errno: int = 0
    child: Any = None  # a task the call made, on this side
    raw: Any = None  # the side's own value (an address; for a pending call, what finishes it)
    actor: Any = None  # for a pending call: the task asleep in it
    args: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})  # the arguments as this side passed them
    reason: str = ""  # for an error on the model: the check that refused

    def __str__(self) -> str:
        if self.status == ERROR:
            return f"-{E.name(self.errno)}"
        if self.status == OK:
            return repr(self.value)
        return self.status


# Trace fields that hold pids; a pid outside the sandbox (its process group is the outer
# world's) has a number each side gives differently, so both print it as OUTSIDE.
PID_FIELDS = ("pid", "child_pid", "parent_pid", "old_pid")
OUTSIDE = "outside"

# A tracepoint line: the pid of the task it fired in, the event, its fields.
TraceLine = tuple[int, str, dict[str, str]]


@dataclass
class TaskRef:
    """A named task on one side: its handle and the pid its creator saw (kept after it is gone)."""

    handle: Any
    pid: int


def host_limits() -> tuple[tuple[int, int], ...]:
    """This process's resource limits: what the host sandbox inherits."""
    limits = []
    for index in range(RLIM_NLIMITS):
        soft, hard = resource.getrlimit(index)
        limits.append((RLIM_INFINITY if soft < 0 else soft, RLIM_INFINITY if hard < 0 else hard))
    return tuple(limits)


def host_scheduling() -> tuple[int, int, int]:
    """This process's policy (with its reset-on-fork bit), real-time priority and nice value:
    what the host sandbox inherits."""
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, os.getpriority(os.PRIO_PROCESS, 0)


class ModelSide:
    name = "model"

    def __init__(
        self,
        version: str = "6.18",
        max_tasks: int = 64,
        limits: tuple[tuple[int, int], ...] = (),
        v2: V2Setup | None = None,
    ) -> None:
        self.version = version
        self.max_tasks = max_tasks
        self.v2 = v2 or V2Setup()
        self.limits = limits or host_limits()
        self.k: forklab.Kernel
        # Global pid -> pid in the sandbox, for every task ever seen (trace lines outlive tasks).
        self.numbers: dict[int, int] = {}

    def start(self) -> TaskHandle:
        k = self.k = forklab.boot(version=self.version)
        init = k.task(1)
        for index, limits in enumerate(self.limits):
            init.setrlimit(index, limits)
        policy, priority, nice = host_scheduling()
        init.setpriority(PRIO_PROCESS, 0, nice)
        init.sched_setscheduler(0, policy, priority)
        # As on the host: a launcher in a session of its own makes pid 1, as a sibling
        # (CLONE_PARENT), then goes: pid 1's process group and session lie outside the sandbox.
        launcher = k.task(init.fork())
        launcher.setsid()
        root = k.task(launcher.clone(SANDBOX_FLAGS | CLONE_PARENT))
        launcher.exit(0)
        init.wait4(launcher.pid)
        for name in ("uid_map", "gid_map"):
            init.write_file(f"/proc/{root.pid}/{name}", f"0 {ID_BASE} {ID_RANGE}\n")
        root.setgroups([])
        root.setresgid(0, 0, 0)
        root.setresuid(0, 0, 0)
        root.mount("proc", "/proc", "proc")
        root.sethostname("forklab")
        for fd in (0, 1, 2):
            root.close(fd)
            root.open("/dev/null", forklab.O_RDWR)
        self.cap_tasks(root)
        root.execve("/sbin/init", ["/sbin/init"], ["HOME=/", "TERM=linux"])
        k.clear_trace()
        self.root = root
        self.numbers[root.pid] = 1
        # Statuses are read as a task that stays in the sandbox's namespaces would read them.
        self.user_ns = root.task_struct.cred.user_ns
        self.pid_ns = root.task_struct.thread_pid.numbers[-1][1]  # type: ignore[union-attr]
        return root

    def cap_tasks(self, root: TaskHandle) -> None:
        """The sandbox's cgroups as the host makes them (host/cgroup.py): a pids cgroup that caps
        its tasks (on v2, or on a v1 hierarchy where the host binds pids there) and a v2 cgroup,
        handed to the sandbox's root where the host could."""
        machine = self.k.machine
        hierarchy = machine.cgroup_root
        hierarchy.ns_delegate, hierarchy.pids_localevents = self.v2.nsdelegate, self.v2.pids_localevents
        if self.v2.pids:
            cgroup_subtree_control_write(machine, hierarchy.root, "+pids")
        else:
            bind_to_legacy(hierarchy, PIDS)
        cgroup = cgroup_mkdir(machine, hierarchy.root, "forklab")
        directory = cgroup_kn(machine, cgroup)
        pids = cgroup.pids or PidsCss(hierarchy.pids_root, "/forklab")  # the v1 one
        pids.limit = self.max_tasks
        if self.v2.delegated:
            for inode in (directory, *(cgroup.files[name] for name in DELEGATED_FILES)):
                inode.uid = inode.gid = ID_BASE
        task = root.task_struct
        assert task.cgroups is not None
        move_task(task, task.cgroups, CssSet(cgroup, pids))

    def close(self) -> None:
        pass

    def call(self, actor: TaskHandle, name: str, args: list[Any], kwargs: dict[str, Any]) -> Outcome:
        outcome = self._call(actor, name, args, kwargs)
        for task in self.tasks():
            self.numbers[task.pid] = task.pid_in(self.root)
        return outcome

    def _call(self, actor: TaskHandle, name: str, args: list[Any], kwargs: dict[str, Any]) -> Outcome:
        if not actor.alive:
            return Outcome(DEAD)
        try:
            result = getattr(actor, name)(*args, **kwargs)
        except SyscallError as err:
            return Outcome(ERROR, errno=err.errno or E.EIO, reason=err.reason)
        except TaskBlocked:
            return Outcome(BLOCKED)
        except TaskGoneError:
            return Outcome(GONE)
        if isinstance(result, Pending):
            return Outcome(PENDING, raw=result, actor=actor)
        if name in ("exit", "exit_group"):
            # An exit that has to wait (a pid namespace's init) is asleep, not gone.
            return Outcome(GONE) if not actor.alive else Outcome(PENDING, actor=actor)
        if spec(name).result == TASK:
            child = actor.task(result)
            if actor.task_struct.pending_call is not None:
                # vfork: the child's pid is known now, the parent's call ends when it runs again.
                return Outcome(PENDING, child=child, raw=result, actor=actor)
            return Outcome(OK, result, child=child)
        if spec(name).result == NONE:
            return Outcome(OK, 0)  # what the system call itself returns
        return Outcome(OK, normalize(name, result), raw=result)

    def finished(self, outcome: Outcome) -> Outcome | None:
        """The final outcome of a pending call, once it has one."""
        pending = outcome.raw
        if isinstance(pending, Pending):
            if not pending.done:
                return None
            try:
                value = pending.result()
                if spec(pending.name).result == NONE:
                    return Outcome(OK, 0)  # what the system call itself returns
                return Outcome(OK, normalize(pending.name, value))
            except SyscallError as err:
                return Outcome(ERROR, errno=err.errno or E.EIO, reason=err.reason)
            except TaskGoneError:
                return Outcome(GONE)
        actor = outcome.actor
        if not actor.alive:
            return Outcome(GONE)
        if actor.task_struct.pending_call is not None:
            return None
        return Outcome(OK, outcome.raw)

    def pid_of(self, task: TaskHandle, viewer: TaskHandle) -> int:
        return task.pid_in(viewer) if task.task_struct.thread_pid is not None else 0

    def tasks(self) -> list[TaskHandle]:
        """Every task of the sandbox's pid namespace (and below), alive or zombie."""
        return [t for t in self.k.tasks() if t.pid_in(self.root)]

    def sandbox_pid(self, task: TaskHandle) -> int:
        return task.pid_in(self.root)

    def status(self, task: TaskHandle) -> dict[str, str]:
        from forklab.kernel.fs.proc import proc_pid_status

        text = proc_pid_status(self.k.machine, task.task_struct, self.pid_ns, self.user_ns)
        return dict(line.partition(":\t")[::2] for line in text.splitlines())

    def trace(self) -> list[TraceLine]:
        """The tracepoint lines of the sandbox's tasks, pids as the sandbox sees them."""
        events = []
        for event in self.k.trace_events():
            fields = {key: format_field(key, value) for key, value in event.fields}
            for key in PID_FIELDS:
                if key in fields and fields[key] != "0":
                    inside = self.numbers.get(int(fields[key]))
                    fields[key] = str(inside) if inside else OUTSIDE
            events.append((self.numbers.get(event.pid, 0), event.name, fields))
        return events


def normalize(name: str, value: Any) -> Any:
    """Values as both sides report them: text as str, tuples as tuples."""
    if isinstance(value, bytes) and spec(name).result != "bytes":
        return value.decode(errors="replace")
    if isinstance(value, list):
        return tuple(value)
    return value


class HostSide:
    name = "host"

    def __init__(self, max_tasks: int = 64, timeout: float = 10.0, trace: bool = True) -> None:
        from forklab.host import Sandbox

        self.sandbox = Sandbox(max_tasks=max_tasks, timeout=timeout, trace=trace)
        self.known_ns: dict[int, tuple[list[int], list[int]]] = {}  # host pid -> namespaces()

    def start(self) -> Any:
        self.sandbox.start()
        self.root = self.sandbox.init
        self.remember(self.root)
        return self.root

    def close(self) -> None:
        self.sandbox.close()

    def call(self, actor: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Outcome:
        from forklab.host import HostTaskBusy, HostTaskGone

        try:
            result = actor.call(name, *args, **kwargs)
        except HostTaskBusy:
            return Outcome(BLOCKED)
        except HostTaskGone:
            return Outcome(DEAD)
        self.remember(result.child)
        if result.gone:
            return Outcome(GONE)
        if result.pending:
            return Outcome(PENDING, child=result.child, actor=actor)
        if result.ret < 0:
            return Outcome(ERROR, errno=-result.ret)
        kind = spec(name).result
        if kind == TASK:
            return Outcome(OK, result.ret, child=result.child)
        if kind == NONE:
            return Outcome(OK, 0)
        value = result.data if result.data is not None else result.ret
        return Outcome(OK, normalize(name, value), raw=value)

    def finished(self, outcome: Outcome) -> Outcome | None:
        task = outcome.actor
        if task is None or task.pending:
            return None
        result = task.result()
        if result.gone:
            return Outcome(GONE)
        if result.ret < 0:
            return Outcome(ERROR, errno=-result.ret)
        value = result.data if result.data is not None else result.ret
        return Outcome(OK, normalize("wait4", value) if isinstance(value, list) else value)

    def pid_of(self, task: Any, viewer: Any) -> int:
        """``task``'s pid as ``viewer`` sees it: 0 once it is reaped, or unless its pid namespace is
        the viewer's or below."""
        if task.reaped:
            return 0
        numbers, chain = self.namespaces(task)
        viewer_ns = self.namespaces(viewer)[1][0]
        return numbers[-1 - chain.index(viewer_ns)] if viewer_ns in chain else 0

    def namespaces(self, task: Any) -> tuple[list[int], list[int]]:
        """The task's NSpid and its pid namespaces from its own up to the sandbox's, read while it
        lives and kept: a zombie has neither its /proc/<pid>/ns nor a way back to them."""
        known = self.known_ns.get(task.host_pid)
        if known is None:
            numbers = [int(n) for n in self.sandbox.status(task)["NSpid"].split()]
            chain = procfs.pid_ns_chain(f"/proc/{task.host_pid}/ns/pid", len(numbers)) or []
            known = self.known_ns[task.host_pid] = (numbers, chain)
        return known

    def remember(self, task: Any) -> None:
        if task is not None and task.alive:
            self.namespaces(task)

    def tasks(self) -> list[Any]:
        return list(self.sandbox.tasks(zombies=True))

    def sandbox_pid(self, task: Any) -> int:
        return int(task.pid)

    def status(self, task: Any) -> dict[str, str]:
        """/proc/<pid>/status; a puppet asleep waiting for its next command is, in the sequence's
        terms, a task back in user space between calls: its State is given as R, as the model's."""
        status = self.sandbox.status(task)
        if status.get("State", "").startswith("S") and task.alive and not task.pending:
            _, flags = procfs.stat(task.host_pid) or ("", procfs.PF_EXITING)
            if not flags & procfs.PF_EXITING:  # asleep on its way out is no idle puppet
                status["State"] = "R (running)"
        return status

    def trace(self) -> list[TraceLine]:
        lines = []
        for record in self.sandbox.trace(wait_free=True):
            fields = dict(record.fields)
            for key in record.foreign & set(PID_FIELDS):
                fields[key] = OUTSIDE
            lines.append((record.pid, record.event, fields))
        return lines
