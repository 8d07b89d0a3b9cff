"""The sandbox: real tasks on the machine's own kernel, one puppet each, fenced in.

Each sandbox has fresh user, pid, mount, uts and ipc namespaces, a private tmpfs root
(pivot_root), a pids cgroup capping its tasks, and time limits. Its pid 1 is a child of
this process (the launcher clones it with CLONE_PARENT), so killing pid 1 from here takes
the whole pid namespace down and ``waitpid`` reaps it.

Every pid reported is the pid inside the sandbox's pid namespace; ``host_pid`` is the same
task seen from the host. A task's identity comes from its HELLO: the kernel translates the
sender's tgid for us (SCM_CREDENTIALS), the puppet adds its tid, and NSpid in the host's
/proc joins the two. Deaths are seen through pidfds (one per task, PIDFD_THREAD) and
/proc states, never guessed from timeouts; a call is pending when /proc shows its task
asleep in that call's system call.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import os
import select
import signal
import socket
import struct
import time
import weakref
from dataclasses import dataclass
from typing import Any

from forklab.host import procfs
from forklab.host.build import host_available, puppet_binary
from forklab.host.calls import Call, Shape, build
from forklab.host.cgroup import PidsCgroup, V2Cgroup
from forklab.host.errors import HostError, HostTaskBusy, HostTaskGone, HostTimeout, HostUnavailable
from forklab.host.protocol import BOOT_STEPS, CHAN_FD, FAULTS, GO, MAX_DATA, REP, Kind, Reply
from forklab.host.tracing import Tracer, TraceRecord, park, records, take_tracer
from forklab.uapi.errno import name as errno_name
from forklab.uapi.unistd import SYSCALL_NUMBERS

PIDFD_THREAD = os.O_EXCL
NR_EXECVE = SYSCALL_NUMBERS["execve"]
# Each sandbox's ids 0..65535 are a private range of host ids, chosen from its pid 1's host pid
# (unique while it lives): never host root, and no two live sandboxes share a user's counts.
ID_RANGE = 65536
ID_SLOTS = 65533


OVERFLOW_ID = 65534


def id_base(host_pid: int) -> int:
    """The host id that the sandbox's id 0 maps to."""
    return ID_RANGE * (1 + host_pid % ID_SLOTS)


def inside_id(host_id: int, base: int) -> int:
    """A host id as the sandbox sees it: its own range, or the overflow id."""
    return host_id - base if base <= host_id < base + ID_RANGE else OVERFLOW_ID


RECV_SIZE = REP.size + MAX_DATA
ANC_SIZE = socket.CMSG_SPACE(4 * 4) + socket.CMSG_SPACE(3 * 4)
RECV_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
# Quiet intervals (seconds) after which /proc is asked whether a call sleeps or its task died.
BACKOFF = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# Calls that set other tasks in motion (a signal's delivery, deaths, a vfork parent's wakeup, a
# tracee let go, a traced zombie handed to its real parent, who is sent SIGCHLD): they return
# once the sandbox is still again, as does any call while another task is pending.
STIRS = frozenset(
    {"kill", "tgkill", "pidfd_send_signal", "ptrace", "sigprocmask", "exit", "exit_group", "execve", "wait4", "waitid"}
)
EXIT_SECOND_LOOK = 0.005  # seconds
RELEASE_GRACE = 0.001  # seconds
SECOND_LOOK = 0.0003  # seconds
TEARDOWN = 10.0  # seconds a killed sandbox may take to be gone
SETTLE = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005)


@dataclass(frozen=True)
class HostResult:
    """One call's outcome. ``ret`` is the raw return (-errno on failure); ``data`` the decoded
    output; ``child`` the task a clone-family call made; ``pending`` says the task sleeps in
    the call (collect it with ``result()``); ``gone`` that the task died in it (exit)."""

    ret: int
    data: Any = None
    child: HostTask | None = None
    pending: bool = False
    gone: bool = False


@dataclass(frozen=True)
class _Message:
    reply: Reply
    fds: list[int]
    sender: int | None  # the sender's tgid as the host sees it


class _Flight:
    """A call on its way back: what has arrived so far."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.reply: Reply | None = None
        self.fault: Reply | None = None
        self.chunks: list[bytes] = []
        self.child: HostTask | None = None
        self.child_lost = False  # the child died before it could announce itself
        self.tgid = 0  # an execve's thread group, as the host numbers it

    def awaits_child(self) -> bool:
        return (
            self.call.shape is Shape.CLONE
            and self.reply is not None
            and self.reply.ret > 0
            and self.child is None
            and not self.child_lost
        )

    def complete(self) -> bool:
        return self.fault is not None or (self.reply is not None and not self.awaits_child())


class HostTask:
    """A real task in a sandbox, driven through its puppet."""

    def __init__(
        self, sandbox: Sandbox, pid: int, host_pid: int, depth: int, chan: int, sock: socket.socket | None
    ) -> None:
        self._sandbox = sandbox
        self._pid = pid
        self._host_pid = host_pid
        self._depth = depth  # entries in its host NSpid: 2 in the sandbox's own pid namespace
        self._chan = chan
        self._sock = sock  # None until a task traced from birth is let go and says hello
        self._creator: HostTask | None = None  # ... on its creator's channel
        self._pidfd = os.pidfd_open(host_pid, PIDFD_THREAD)
        self._gone = False
        self._released = False  # its pids are free: nothing of it is left
        self._flight: _Flight | None = None  # the last call that came back pending
        self._outcome: HostResult | None = None  # ... and its result, once collected

    @property
    def pid(self) -> int:
        """The task's pid (its tid) in the sandbox's pid namespace."""
        return self._pid

    @property
    def host_pid(self) -> int:
        """The same task's tid as the host sees it."""
        return self._host_pid

    @property
    def alive(self) -> bool:
        """False once it has exited: a zombie, being reaped, or gone."""
        return self._sandbox._alive(self)

    @property
    def reaped(self) -> bool:
        """True once it has been released: no pid of its is in use any more."""
        return bool(_revents(self._pidfd) & select.POLLHUP)

    @property
    def pending(self) -> bool:
        """True while the task sleeps in a call that came back pending."""
        return self._sandbox._still_pending(self)

    def call(self, name: str, *args: Any, **kwargs: Any) -> HostResult:
        """Make system call ``name`` in this task (see forklab.host.calls for the list)."""
        return self._sandbox._call(self, name, args, kwargs)

    def result(self) -> HostResult:
        """The outcome of the last call that came back pending, waiting for it if need be."""
        return self._sandbox._result(self)

    def __repr__(self) -> str:
        return f"<HostTask pid={self._pid} host_pid={self._host_pid}{'' if self.alive else ' gone'}>"


class _Holdings:
    """Everything a sandbox holds on the host, given back exactly once, whatever happened."""

    def __init__(self) -> None:
        self.init_pid: int | None = None
        self.init_pidfd: int | None = None
        self.fds: list[int] = []
        self.socks: list[socket.socket] = []
        self.cgroup: PidsCgroup | None = None
        self.v2: V2Cgroup | None = None
        self.tracer: Tracer | None = None
        self.trace_texts: tuple[str, str] | None = None  # what was recorded, once stopped

    def release(self) -> None:
        """Every step runs even if one before it failed; the first failure is raised after."""
        failures: list[Exception] = []
        for step in (self._stop_trace, self._kill_init, self._close_fds, self._remove_cgroup):
            try:
                step()
            except Exception as err:  # each step gets its turn
                failures.append(err)
        if failures:
            raise failures[0]

    def _stop_trace(self) -> None:
        """Before the kill, so the teardown stays out of the trace."""
        if self.tracer is not None:
            tracer, self.tracer = self.tracer, None
            self.trace_texts = tracer.stop()
            park(tracer)

    def _close_fds(self) -> None:
        for sock in self.socks:
            sock.close()
        for fd in self.fds:
            os.close(fd)
        self.socks.clear()
        self.fds.clear()

    def _remove_cgroup(self) -> None:
        """The v2 cgroup's insides first: on a pure v2 machine they are inside the pids cgroup."""
        try:
            if self.v2 is not None:
                self.v2.remove()
        finally:
            if self.cgroup is not None:
                self.cgroup.remove()

    def _kill_init(self) -> None:
        """SIGKILL pid 1 (the kernel kills its whole pid namespace) and every other task, then reap
        pid 1 once the rest are gone.

        Every task, because a task killed while traced with PTRACE_O_TRACEEXIT stops on its way
        out until its tracer lets it go, and a dying group takes no more signals: the tracers
        must die too (an untraced one dies at once and frees its tracees). Tracers that trace
        each other in a ring would wait for ever: after TEARDOWN seconds this gives up and says so.
        """
        if self.init_pid is None:
            return
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
            self._kill_the_rest()
            # POLLIN once pid 1 has exited, which it does after every other task of its namespace.
            gone = select.poll()
            gone.register(self.init_pidfd, select.POLLIN)
            exited = bool(gone.poll(TEARDOWN * 1000))
            os.close(self.init_pidfd)
            self.init_pidfd = None
            if not exited:
                self.init_pid = None
                raise HostError(f"the sandbox's tasks were still held in ptrace stops {TEARDOWN} s after SIGKILL")
        with contextlib.suppress(ChildProcessError):  # reaped already if this process ignores SIGCHLD
            os.waitpid(self.init_pid, 0)
        self.init_pid = None

    def _kill_the_rest(self) -> None:
        """SIGKILL each task of the sandbox's cgroup, through a pidfd opened while it was still
        listed there (so a host tid reused meanwhile is never signalled)."""
        if self.cgroup is None:
            return
        fds: dict[int, int] = {}
        try:
            for tid in self.cgroup.threads():
                with contextlib.suppress(ProcessLookupError):
                    fds[tid] = os.pidfd_open(tid, PIDFD_THREAD)
            listed = set(self.cgroup.threads())
            for tid, fd in fds.items():
                if tid in listed:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            for fd in fds.values():
                os.close(fd)


def _revents(fd: int) -> int:
    """What poll says about ``fd`` right now: POLLIN on a pidfd once the task exited, POLLHUP
    once it was released (reaped)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return sum(revents for _, revents in poller.poll(0))


class Sandbox:
    """Real tasks in fresh namespaces, capped at ``max_tasks``, each call limited to
    ``timeout`` seconds and the sandbox's life to ``total_timeout`` (checked at each call).

    Use it as a context manager; ``close()`` (also run at garbage collection) kills every
    task and removes the cgroup; with ``trace=True`` its tracefs instances go back to this
    process's idle pairs (see tracing.py), removed at exit.
    """

    def __init__(
        self, max_tasks: int = 64, timeout: float = 10.0, trace: bool = False, total_timeout: float = 300.0
    ) -> None:
        if max_tasks < 2:
            raise ValueError("max_tasks must leave room for pid 1 and at least one more task")
        self.max_tasks = max_tasks
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.tracing = trace
        self._held = _Holdings()
        self._finalizer: weakref.finalize[[], Sandbox] | None = None
        self._known: dict[int, HostTask] = {}  # every task of the sandbox, by host tid
        self._pids: dict[int, int] = {}  # host tid -> sandbox pid, for every task ever seen
        self._procfd = -1
        self._id_base = 0  # the host id of the sandbox's id 0
        self._end = 0.0
        self._init: HostTask | None = None
        self._root = 0
        self._closed = False

    # ---- life ----------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        ok, why = host_available()
        if not ok:
            raise HostUnavailable(why)
        if self._finalizer is not None or self._closed:
            raise HostError("a Sandbox starts once")
        binary = puppet_binary()
        self._finalizer = weakref.finalize(self, self._held.release)
        self._end = time.monotonic() + self.total_timeout
        try:
            self._boot(binary)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop tracing, kill every task, reap, close, remove the cgroup. Idempotent."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    @property
    def init(self) -> HostTask:
        """Pid 1 of the sandbox (after an exec by one of its threads, that thread)."""
        if self._init is None:
            raise HostError("the sandbox has not started")
        return self._known.get(self._root, self._init)

    @property
    def cgroup_path(self) -> str | None:
        return None if self._held.cgroup is None else str(self._held.cgroup.path)

    @property
    def v2_cgroup_path(self) -> str | None:
        """The sandbox's cgroup v2 directory (see cgroup.V2Setup for what it offers)."""
        return None if self._held.v2 is None else str(self._held.v2.path)

    def _boot(self, binary: str) -> None:
        held = self._held
        held.cgroup = PidsCgroup(self.max_tasks)
        held.v2 = V2Cgroup(held.cgroup)
        if self.tracing:
            held.tracer = take_tracer()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        held.socks.append(ours)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        # The launcher: a short-lived host process that joins the cgroup and clones pid 1.
        argv = [binary, "--forklab-boot", held.cgroup.procs, binary, os.path.dirname(binary)]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
            (os.POSIX_SPAWN_DUP2, 0, 1),
            (os.POSIX_SPAWN_DUP2, 0, 2),
            (os.POSIX_SPAWN_DUP2, theirs.fileno(), CHAN_FD),
        ]
        with theirs:
            try:
                launcher = os.posix_spawn(binary, argv, {}, file_actions=actions, setsid=True)
            except OSError as err:
                raise HostUnavailable(f"cannot run the puppet {binary}: {err.strerror}") from None
        try:
            born = self._boot_message(ours, Kind.BOOT, "the launcher")
        finally:
            os.waitpid(launcher, 0)
        held.init_pid = born.ret
        self._id_base = id_base(born.ret)
        held.init_pidfd = os.pidfd_open(born.ret)
        held.v2.delegate(born.ret, self._id_base)
        for name in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{born.ret}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"0 {self._id_base} {ID_RANGE}\n".encode())
            finally:
                os.close(fd)
        ours.send(GO)
        self._boot_message(ours, Kind.EXEC, "the sandbox's pid 1")
        self._procfd = os.open(f"/proc/{born.ret}/root/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        held.fds.append(self._procfd)
        self._root = born.ret  # pid 1's host pid, whichever task holds it
        self._init = self._adopt_task(1, born.ret, 2, CHAN_FD, ours)
        if held.tracer is not None:
            held.tracer.start()

    def _boot_message(self, sock: socket.socket, expected: Kind, sender: str) -> Reply:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        ready = poller.poll(max(0.0, min(self.timeout, self._end - time.monotonic())) * 1000)
        message = self._receive(sock) if ready else None
        if message is None:
            raise HostUnavailable(f"{sender} gave no sign of life")
        reply = message.reply
        if reply.kind is Kind.BOOTERR:
            step = BOOT_STEPS.get(reply.v0, f"step {reply.v0}")
            raise HostUnavailable(f"sandbox setup failed while {step}: {errno_name(-reply.ret)}")
        if reply.kind is not expected:
            raise HostError(f"sandbox setup: expected {expected.name}, got {reply.kind.name}")
        return reply

    def _adopt_task(self, pid: int, host_pid: int, depth: int, chan: int, sock: socket.socket | None) -> HostTask:
        if sock is not None:
            self._held.socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        task = HostTask(self, pid, host_pid, depth, chan, sock)
        self._held.fds.append(task._pidfd)
        self._known[host_pid] = task
        self._pids[host_pid] = pid
        return task

    # ---- what the caller sees ------------------------------------------------------------------

    def tasks(self, zombies: bool = False) -> list[HostTask]:
        """The tasks still alive (with ``zombies``, also those not yet reaped), in order of birth."""
        if not zombies:
            return [task for task in self._known.values() if self._alive(task)]
        return [task for task in self._known.values() if procfs.read_text(f"{task.pid}/stat", dir_fd=self._procfd)]

    def task(self, pid: int) -> HostTask:
        """The live task with sandbox pid ``pid``."""
        for task in self.tasks():
            if task.pid == pid:
                return task
        raise HostTaskGone(f"no live task with pid {pid} in this sandbox")

    def status(self, task: HostTask) -> dict[str, str]:
        """/proc/<pid>/status as a task of the sandbox reads it: pids in its pid namespace
        (its own /proc), ids in its user namespace."""
        self._check_open()
        text = procfs.read_text(f"{task.pid}/status", dir_fd=self._procfd)
        if text is None:
            raise HostTaskGone(f"task {task.pid} has no /proc entry any more")
        status = procfs.parse_status(text)
        for field in ("Uid", "Gid", "Groups"):
            if field in status:
                separator = " " if field == "Groups" else "\t"
                status[field] = separator.join(str(inside_id(int(i), self._id_base)) for i in status[field].split())
        return status

    def trace(self, wait_free: bool = False) -> list[TraceRecord]:
        """Tracepoint records since the sandbox started, pids translated; needs trace=True.

        sched_process_free comes one RCU grace period after a task is released. With
        ``wait_free`` this first waits (at most ``timeout``) until every released task of the
        sandbox has its free record.
        """
        if not self.tracing:
            raise HostError("this sandbox was made without trace=True")
        deadline = time.monotonic() + self.timeout
        while True:
            found = self._records()
            if not wait_free or self._closed or self._all_freed(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.002)

    def _records(self) -> list[TraceRecord]:
        held = self._held
        texts = held.trace_texts if held.tracer is None else held.tracer.texts()
        return [] if texts is None else records(texts, self._root, self._pids)

    def _all_freed(self, records: list[TraceRecord]) -> bool:
        freed = {r.fields["pid"] for r in records if r.event == "sched_process_free"}
        released = {str(t.pid) for t in self._known.values() if _revents(t._pidfd) & select.POLLHUP}
        return released <= freed

    # ---- calls ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._init is None:
            raise HostError("the sandbox is closed" if self._closed else "the sandbox has not started")
        if time.monotonic() > self._end:
            self.close()
            raise HostTimeout(f"the sandbox outlived its {self.total_timeout} s limit; it was killed")

    def _call(self, task: HostTask, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HostResult:
        self._check_open()
        if self._still_pending(task):
            assert task._flight is not None
            raise HostTaskBusy(
                f"task {task.pid} is still asleep in {task._flight.call.name}; collect it with result() first"
            )
        if task._gone or bool(_revents(task._pidfd)):
            task._gone = True
            raise HostTaskGone(f"task {task.pid} has exited; it takes no more calls")
        if procfs.state(task._host_pid) in ("t", "T"):
            raise HostTaskBusy(f"task {task.pid} is stopped; it takes no calls until it is continued")
        sock = task._sock or self._await_channel(task)
        call = build(name, args, kwargs, task._chan)
        flight = _Flight(call)
        if call.shape is Shape.EXECVE:
            flight.tgid = int(
                procfs.parse_status(procfs.read_text(f"/proc/{task.host_pid}/status") or "").get("Tgid", 0)
            )
        try:
            sock.send(call.request.pack())
        except OSError:
            raise HostTaskGone(f"task {task.pid} has exited; it takes no more calls") from None
        result = self._follow(task, flight, may_pend=True)
        if name in STIRS or any(t._flight is not None and t._outcome is None for t in self._known.values()):
            self._settle(f"after {name} in task {task.pid}")
        return result

    def _settle(self, what: str) -> None:
        """Wait until no task is running or half-way out: what the call set off has played out."""
        deadline = min(time.monotonic() + self.timeout, self._end)
        released = sum(t._released for t in self._known.values())
        still = 0  # looks in a row that found nothing moving
        for delay in itertools.chain(SETTLE, itertools.repeat(SETTLE[-1])):
            if any(self._moving(t) for t in self._known.values()):
                still = 0
            else:
                still += 1
                if still == 2:
                    return
                # A second look, a moment later: a task that just died wakes its waiter (a
                # parent in wait4, a pid namespace's init) right after it stops moving, and
                # its pid numbers leave the namespace a moment after its pidfd says it is gone.
                fresh = sum(t._released for t in self._known.values()) > released
                time.sleep(RELEASE_GRACE if fresh else SECOND_LOOK)
                continue
            if time.monotonic() > deadline:
                self.close()
                raise HostTimeout(f"the sandbox did not come to rest {what} within {self.timeout} s; it was killed")
            time.sleep(delay)

    def _result(self, task: HostTask) -> HostResult:
        self._check_open()
        if task._outcome is None:
            if task._flight is None:
                raise HostError(f"task {task.pid} has no pending call to collect")
            task._outcome = self._follow(task, task._flight, may_pend=False)
        return task._outcome

    def _still_pending(self, task: HostTask) -> bool:
        """Collects a pending call's result if it has come back meanwhile."""
        flight = task._flight
        if flight is None or task._outcome is not None or self._closed:
            return False
        self._drain(task, flight)
        self._took_over_leader(task, flight)
        if flight.complete():
            task._outcome = self._finish(task, flight)
        elif not self._alive(task):
            task._outcome = self._lost(task, flight)
        return task._outcome is None

    def _follow(self, task: HostTask, flight: _Flight, may_pend: bool) -> HostResult:
        """Wait for the flight to complete, the task to die, or (may_pend) the call to sleep."""
        deadline = min(time.monotonic() + self.timeout, self._end)
        # An exec by a thread moves the leader's struct pid to it (de_thread), so its own
        # pidfd reports the old leader's death: an execve is followed by its reply alone.
        watch_death = flight.call.shape is not Shape.EXECVE
        assert task._sock is not None
        poller = select.poll()
        poller.register(task._sock, select.POLLIN)
        if watch_death:
            poller.register(task._pidfd, select.POLLIN)
        quiet = 0  # intervals in which nothing came: the next wait grows with them
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise HostTimeout(
                    f"{flight.call.name} in task {task.pid} gave no answer within {self.timeout} s; "
                    "the sandbox was killed"
                )
            events = dict(poller.poll(min(BACKOFF[min(quiet, len(BACKOFF) - 1)], left) * 1000))
            self._drain(task, flight)
            self._took_over_leader(task, flight)
            if flight.complete():
                return self._finish(task, flight)
            if events.get(task._sock.fileno(), 0) & select.POLLHUP:
                poller.unregister(task._sock)  # nothing more can come; keep watching the pidfd
            if flight.reply is None and (
                (watch_death and (task._pidfd in events or (not events and not self._alive(task))))
                or (not watch_death and not events and self._exec_lost(task, flight))
            ):
                return self._lost(task, flight)
            quiet += not events
            if not events and self._awaits_newborn(flight) and self._traced(task):
                flight.child = self._traced_newborn(task, flight)
                if flight.complete():
                    return self._finish(task, flight)
            # A vfork parent is worth a look as soon as its child has said hello.
            if (not events or flight.child) and may_pend and self._asleep(task, flight):
                task._flight, task._outcome = flight, None
                return HostResult(0, None, flight.child, pending=True)
            if not events and flight.awaits_child():
                assert flight.reply is not None
                flight.child_lost = self._child_dead(task, flight.reply.ret)

    def _finish(self, task: HostTask, flight: _Flight) -> HostResult:
        if flight.fault is not None:
            fault = flight.fault
            raise HostError(
                f"{flight.call.name} in task {task.pid}: {FAULTS.get(fault.v0, 'puppet fault')} "
                f"({errno_name(-fault.ret)})"
            )
        assert flight.reply is not None
        reply = flight.reply
        data = None
        if flight.call.decode is not None and reply.ret >= 0:
            data = flight.call.decode(reply, b"".join(flight.chunks) + reply.data)
        return HostResult(reply.ret, data, flight.child)

    def _lost(self, task: HostTask, flight: _Flight) -> HostResult:
        """The task died inside its call (exit, exit_group, a fatal signal)."""
        task._gone = True
        return HostResult(0, None, flight.child, gone=True)

    # ---- messages ------------------------------------------------------------------------------

    def _receive(self, sock: socket.socket) -> _Message | None:
        """One message if one is waiting; None if none is (or the channel is closed)."""
        try:
            data, ancillary, flags, _ = sock.recvmsg(RECV_SIZE, ANC_SIZE, RECV_FLAGS)
        except (BlockingIOError, ConnectionResetError):
            return None
        fds: list[int] = []
        sender = None
        for level, kind, body in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", body[: len(body) - len(body) % 4]))
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = struct.unpack_from("i", body)[0]
        if not data:
            return None
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(data) < REP.size:
            for fd in fds:
                os.close(fd)
            raise HostError("a puppet sent a message the host layer cannot read")
        return _Message(Reply.unpack(data), fds, sender)

    def _drain(self, task: HostTask, flight: _Flight) -> None:
        assert task._sock is not None
        while not flight.complete() and (message := self._receive(task._sock)) is not None:
            self._take(task, flight, message)

    def _take(self, task: HostTask, flight: _Flight | None, message: _Message) -> None:
        """One message from ``task``'s channel: a hello from a new task, or part of ``flight``."""
        reply = message.reply
        if reply.kind is Kind.HELLO:
            child, announced = self._hello(message)
            if not announced and flight is not None:
                flight.child = child
                flight.child_lost = child is None
            return
        for fd in message.fds:
            os.close(fd)
        if flight is None:
            raise HostError(f"task {task.pid} sent a {reply.kind.name} message outside any call")
        if reply.kind is Kind.CHUNK:
            flight.chunks.append(reply.data)
        elif reply.kind is Kind.FAULT:
            flight.fault = reply
        elif reply.kind in (Kind.RESULT, Kind.EXEC):
            flight.reply = reply
            if reply.kind is Kind.EXEC:
                self._after_exec(task, message.sender)
        else:
            raise HostError(f"task {task.pid} sent an unexpected {reply.kind.name} message")

    def _hello(self, message: _Message) -> tuple[HostTask | None, bool]:
        """The task that said hello (None if it died before it could be looked at), and whether
        it was known already: adopted, traced from birth, before it could speak."""
        if len(message.fds) != 1 or message.sender is None:
            for fd in message.fds:
                os.close(fd)
            raise HostError("a new task announced itself without its channel or its credentials")
        sock = socket.socket(fileno=message.fds[0])
        try:
            host_tid, ns = self._locate(message.sender, message.reply.v0)
        except ProcessLookupError:
            sock.close()
            return None, False
        known = self._known.get(host_tid)
        if known is None or known._sock is not None:
            return self._adopt_task(ns[1], host_tid, len(ns), message.reply.v1, sock), False
        self._held.socks.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        known._sock, known._chan, known._creator = sock, message.reply.v1, None
        return known, True

    # ---- tasks traced from birth ---------------------------------------------------------------

    @staticmethod
    def _awaits_newborn(flight: _Flight) -> bool:
        """A clone-family call whose child has not said hello: still in the call, or back."""
        return (
            flight.call.shape is Shape.CLONE
            and flight.child is None
            and (flight.reply is None or flight.awaits_child())
        )

    @staticmethod
    def _traced(task: HostTask) -> bool:
        """Only a traced task's children are stopped from birth (ptrace_init_task, or a group
        stop its tracer let it out of)."""
        text = procfs.read_text(f"/proc/{task.host_pid}/status")
        return text is not None and procfs.parse_status(text).get("TracerPid", "0") != "0"

    def _traced_newborn(self, creator: HostTask, flight: _Flight) -> HostTask | None:
        """The task ``flight`` made if it is stopped before it could say hello (a tracer took it
        at birth, or it joined the group stop its traced creator was let out of): adopted
        without a channel, which its hello brings once it is let go. Found in the sandbox's
        cgroup as the one stopped task nobody knows; once the call has returned, its pid must be
        the one it returned."""
        assert self._held.cgroup is not None
        found = []
        for host_tid in self._held.cgroup.threads():
            if host_tid in self._known or procfs.state(host_tid) not in ("t", "T"):
                continue
            ns = procfs.nspid(host_tid)
            if ns and len(ns) >= 2:
                found.append((host_tid, ns))
        if flight.reply is not None:
            nr = flight.reply.ret
            pid = nr if creator._depth == 2 else self._sandbox_pid_from_view(creator, nr)
            found = [(tid, ns) for tid, ns in found if ns[1] == pid]
        if len(found) != 1:
            return None
        host_tid, ns = found[0]
        child = self._adopt_task(ns[1], host_tid, len(ns), -1, None)
        child._creator = creator
        return child

    def _await_channel(self, task: HostTask) -> socket.socket:
        """A task traced from birth says hello on its creator's channel once let go: wait for it
        (the creator's own replies that come meanwhile go to its pending call)."""
        creator = task._creator
        assert creator is not None and creator._sock is not None
        deadline = min(time.monotonic() + self.timeout, self._end)
        poller = select.poll()
        poller.register(creator._sock, select.POLLIN)
        while task._sock is None:
            message = self._receive(creator._sock)
            if message is not None:
                pending = creator._flight if creator._outcome is None else None
                self._take(creator, pending, message)
                continue
            if procfs.state(task._host_pid) in ("t", "T"):
                raise HostTaskBusy(f"task {task.pid} is stopped and has not run yet")
            if not self._alive(task):
                raise HostTaskGone(f"task {task.pid} has exited; it takes no more calls")
            if time.monotonic() > deadline:
                self.close()
                raise HostTimeout(f"task {task.pid} never said hello within {self.timeout} s; the sandbox was killed")
            poller.poll(BACKOFF[2] * 1000)
        return task._sock

    def _locate(self, host_tgid: int, ns_tid: int) -> tuple[int, list[int]]:
        """Host tid and NSpid of the task whose tid in its own namespace is ``ns_tid``."""
        ns = procfs.nspid(host_tgid)
        if ns and ns[-1] == ns_tid:
            return host_tgid, ns
        for entry in procfs.list_dir(f"/proc/{host_tgid}/task"):
            ns = procfs.nspid(int(entry))
            if ns and ns[-1] == ns_tid:
                return int(entry), ns
        raise ProcessLookupError(f"no thread {ns_tid} in host process {host_tgid}")

    def _after_exec(self, task: HostTask, host_tgid: int | None) -> None:
        """A thread other than the leader that execs takes over the leader's pid (de_thread);
        the old leader, dead, keeps the thread's old pid."""
        if host_tgid is None or host_tgid == task._host_pid:
            return
        old_pid, old_host = task._pid, task._host_pid
        leader = self._known[host_tgid]
        # The struct pids were exchanged, and so were the tasks their pidfds point at (and what
        # was seen through them).
        leader._gone, leader._released, task._gone, task._released = True, task._released, False, False
        leader._pidfd, task._pidfd = task._pidfd, leader._pidfd
        leader._pid, leader._host_pid = old_pid, old_host
        task._pid, task._host_pid = self._pids[host_tgid], host_tgid
        self._known[old_host], self._known[host_tgid] = leader, task

    def _took_over_leader(self, task: HostTask, flight: _Flight) -> None:
        """A thread's exec has passed de_thread but not returned (a tracer holds it at
        PTRACE_EVENT_EXEC): its old tid is released and its group's tgid is now its own."""
        if flight.call.shape is not Shape.EXECVE or flight.reply is not None or flight.tgid in (0, task._host_pid):
            return
        if _revents(task._pidfd) & select.POLLHUP and procfs.state(flight.tgid) not in (None, "Z", "X"):
            self._after_exec(task, flight.tgid)

    # ---- /proc ---------------------------------------------------------------------------------

    def _alive(self, task: HostTask) -> bool:
        if not (task._gone or self._closed):
            task._gone = bool(_revents(task._pidfd)) or procfs.state(task._host_pid) in (None, "Z", "X")
        return not (task._gone or self._closed)

    def _moving(self, task: HostTask) -> bool:
        """Running; dying and neither a zombie nor asleep yet; or dead and still being released
        (X: its pids are not free yet): something about it is still to happen. A dying pid
        namespace init asleep in zap_pid_ns_processes (S) may wait for ever, for a zombie whose
        parent is outside that namespace: that is a rest."""
        if task._released:
            return False
        events = _revents(task._pidfd)
        letter, flags = ("", 0) if events & select.POLLHUP else procfs.stat(task._host_pid) or ("", 0)
        if not letter:
            task._gone = task._released = True
            return False
        task._gone = task._gone or bool(events) or letter in "ZX"
        return letter in "RX" or (bool(flags & procfs.PF_EXITING) and letter not in "SZ")

    def _asleep(self, task: HostTask, flight: _Flight) -> bool:
        """Is the task asleep in this call's own system call (or stopped)? Then it is pending."""
        if flight.call.shape is Shape.CLONE and flight.child is None:
            return False  # a vfork parent is pending only once its child is known
        state = procfs.state(task._host_pid)
        if state in ("T", "t"):
            return True
        if flight.call.shape is Shape.EXIT and not self._dying_for_good(task):
            return False
        if flight.call.shape is Shape.EXECVE:
            return self._held_in_exec(task, flight.tgid)
        if state == "D" and flight.call.waits_interruptibly:
            return False
        return procfs.sleeping_syscall(task._host_pid) in flight.call.blocks

    def _exec_lost(self, task: HostTask, flight: _Flight) -> bool:
        """The exec'ing thread died in its exec (killed while de_thread waited), and its group's
        leader with it: neither its own pid nor the leader's names a live task. (Past de_thread,
        the thread lives on under the leader's pid.)"""
        dead = (None, "Z", "X")
        if procfs.state(task._host_pid) not in dead:
            return False
        return flight.tgid in (0, task._host_pid) or procfs.state(flight.tgid) in dead

    def _held_in_exec(self, task: HostTask, tgid: int) -> bool:
        """An exec by a thread waits in de_thread for the other threads to be gone; one that a
        tracer holds (a leader stopped at PTRACE_EVENT_EXIT, a traced zombie not yet reaped)
        holds the exec until the tracer acts. Such a thread in its group, the exec asleep in
        execve and nothing else moving, at two looks: held (a short sleep on a loaded machine
        is not)."""
        for look in range(2):
            if look:
                time.sleep(EXIT_SECOND_LOOK)
            if procfs.sleeping_syscall(task._host_pid) != NR_EXECVE:
                return False
            held = [
                procfs.state(int(tid)) for tid in procfs.list_dir(f"/proc/{tgid}/task") if int(tid) != task._host_pid
            ]
            if not any(state in ("t", "Z") for state in held):
                return False
            if any(self._moving(t) for t in self._known.values() if t is not task):
                return False
        return True

    def _dying_for_good(self, task: HostTask) -> bool:
        """A dying task sleeps for good only interruptibly, and only while nothing else moves (a
        pid namespace's init waiting for a zombie that its parent outside never reaps). An
        uninterruptible sleep on the way out, or a wait for dying tasks, passes; so can a wait
        whose waker has just been seen to die (it wakes the sleeper a moment later), hence the
        second look."""
        for look in range(2):
            if look:
                time.sleep(EXIT_SECOND_LOOK)
            moving = any(self._moving(t) for t in self._known.values() if t is not task)
            if procfs.state(task._host_pid) != "S" or moving:
                return False
        return True

    def _child_dead(self, parent: HostTask, nr: int) -> bool:
        """Did the child ``nr`` (pid as the parent sees it) die before it could say hello?"""
        pid = nr if parent._depth == 2 else self._sandbox_pid_from_view(parent, nr)
        return pid is not None and procfs.state(pid, self._procfd) in (None, "Z", "X")

    def _sandbox_pid_from_view(self, viewer: HostTask, nr: int) -> int | None:
        """The sandbox pid of the task that ``viewer`` (in a pid namespace below the sandbox's)
        sees as ``nr``: its number at the viewer's level, in the viewer's own namespace (sibling
        namespaces at that level number their tasks alike)."""
        level = viewer._depth - 2  # in NSpid as the sandbox shows it, 0 is the sandbox's number
        own = procfs.pid_ns_chain(f"/proc/{viewer._host_pid}/ns/pid", 1)
        for tgid in filter(str.isdigit, procfs.list_dir(".", self._procfd)):
            for tid in procfs.list_dir(f"{tgid}/task", self._procfd):
                text = procfs.read_text(f"{tgid}/task/{tid}/status", dir_fd=self._procfd)
                ns = procfs.parse_status(text or "").get("NSpid", "").split()
                if len(ns) <= level or int(ns[level]) != nr:
                    continue
                chain = procfs.pid_ns_chain(f"{tgid}/task/{tid}/ns/pid", len(ns) - level, self._procfd)
                if own is not None and chain is not None and chain[-1] == own[0]:
                    return int(tid)
        return None
