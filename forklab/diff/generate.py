"""Random sequences that reach deep states, and shrinking a disagreement to its smallest form.

A sequence is made by playing the model: each step is chosen among what the model's current
state allows (a task that exists and is not asleep, an fd that is open, a mapping that
exists), so runs go deep (threads, nested pid and user namespaces, dropped privileges,
rlimits, exits in every order) instead of failing at the first step. The same seed gives
the same sequence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from forklab.diff.script import Scenario, ScenarioError, Step, parse_line
from forklab.diff.sides import OK, PENDING, ModelSide, Outcome
from forklab.kernel.task import Task
from forklab.uapi.flags import flag_names
from forklab.uapi.sched import PTHREAD_FLAGS

T = TypeVar("T")

# Flags a random clone draws from, with the names a scenario line shows.
CLONE_BITS = (
    "CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_THREAD", "CLONE_SYSVSEM", "CLONE_SETTLS",
    "CLONE_PARENT_SETTID", "CLONE_CHILD_SETTID", "CLONE_CHILD_CLEARTID", "CLONE_PARENT", "CLONE_VFORK",
    "CLONE_NEWPID", "CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWUSER", "CLONE_IO",
)  # fmt: skip
# pthread_create's flags, spelled out in the scenario text for the reader.
PTHREAD = " | ".join(flag_names(PTHREAD_FLAGS))
UNSHARE_BITS = (
    "CLONE_FILES",
    "CLONE_FS",
    "CLONE_NEWNS",
    "CLONE_NEWUTS",
    "CLONE_NEWIPC",
    "CLONE_NEWUSER",
    "CLONE_NEWPID",
)
PATHS = ("/bin/ls", "/bin/sh", "/sbin/getty", "/nope", "/tmp", "/dev/null")
FILES = ("/dev/null", "/tmp/a", "/tmp/b", "/proc/self/comm", "/nope/x")
SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGTERM", "SIGKILL", "SIGCONT", "0")
WAIT_OPTIONS = (
    "0", "WNOHANG", "__WALL", "WNOHANG | __WALL", "__WCLONE | WNOHANG", "WNOHANG | __WNOTHREAD", "0x4000",
    "WUNTRACED | WNOHANG", "WCONTINUED | WNOHANG", "WUNTRACED | WCONTINUED", "WUNTRACED | WCONTINUED | __WALL",
)  # fmt: skip
# Job control: stops, and the signal that ends them.
STOP_SIGNALS = ("SIGSTOP", "SIGTSTP", "SIGCONT", "SIGCONT")
WAITID_TYPES = ("P_ALL", "P_ALL", "P_PID", "P_PGID")
WAITID_OPTIONS = ("WEXITED", "WSTOPPED", "WCONTINUED", "WNOWAIT", "WNOHANG", "WNOHANG", "__WALL")
PIDFD_FLAGS = ("0", "0", "PIDFD_THREAD", "PIDFD_NONBLOCK", "PIDFD_THREAD | PIDFD_NONBLOCK")
PIDFD_SCOPES = ("0", "0", "0", "PIDFD_SIGNAL_THREAD", "PIDFD_SIGNAL_THREAD_GROUP", "PIDFD_SIGNAL_PROCESS_GROUP")
PIDFD_SIGNALS = ("SIGSTOP", "SIGCONT", "SIGUSR1", "SIGKILL", "SIGTSTP", "0")
# Trace options without the event options of fork, vfork, clone, exec and exit (drawn elsewhere).
PTRACE_OPTIONS = ("0", "0", "PTRACE_O_EXITKILL", "PTRACE_O_TRACESYSGOOD")
PTRACE_CONT_SIGNALS = ("0", "0", "0", "SIGCONT", "SIGSTOP", "SIGUSR1")
# The event options: a tracee stops at its forks, clones, vforks, execs and exits, its new children
# traced from birth.
EVENT_OPTIONS = (
    "PTRACE_O_TRACEFORK", "PTRACE_O_TRACEVFORK", "PTRACE_O_TRACECLONE", "PTRACE_O_TRACEEXEC", "PTRACE_O_TRACEEXIT",
    "PTRACE_O_TRACEVFORKDONE",
)  # fmt: skip


class Chooser(Protocol):
    """Where the choices come from: a seeded random.Random, or hypothesis's draws."""

    def random(self) -> float: ...
    def randint(self, a: int, b: int) -> int: ...
    def choice(self, seq: Sequence[T]) -> T: ...
    def choices(self, population: Sequence[T], weights: Sequence[float]) -> list[T]: ...
    def sample(self, population: Sequence[T], k: int) -> list[T]: ...


@dataclass
class Generator:
    """Plays the model to pick each next step."""

    rng: Chooser
    model: ModelSide

    def __post_init__(self) -> None:
        from forklab.diff.compare import Side

        self.side = Side(self.model)
        self.side.start()
        self.steps: list[Step] = []
        self.counter = 0
        self.fds: dict[str, str] = {}  # fd name -> the task that opened it
        self.pidfds: dict[str, str] = {}  # the pidfds among them
        # Address name -> (length, the address spaces it means something in: the one it was
        # mapped in and those forked from it; exec starts a new one). Across address spaces
        # an address means nothing: the host lays out each one at random.
        self.maps: dict[str, tuple[int, list[object]]] = {}

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def ready_tasks(self) -> list[str]:
        from forklab.diff.sides import TaskRef

        names = []
        for name, ref in self.side.names.items():
            if isinstance(ref, TaskRef) and ref.handle is not None:
                handle = ref.handle
                if handle.alive and handle.state == "R" and handle.task_struct.pending_call is None:
                    names.append(name)
        return names

    def tasks(self) -> list[str]:
        from forklab.diff.sides import TaskRef

        return [name for name, ref in self.side.names.items() if isinstance(ref, TaskRef)]

    def related(self, actor: str, tracees: bool) -> list[str]:
        """The live tasks that ``actor`` traces, or (``tracees`` False) its own children."""
        from forklab.diff.sides import TaskRef

        me = self.task_of(actor)
        found = []
        for name, ref in self.side.names.items():
            if isinstance(ref, TaskRef) and ref.handle is not None and ref.handle.alive:
                task = ref.handle.task_struct
                if (task.ptrace and task.parent is me) if tracees else task.real_parent is me:
                    found.append(name)
        return found

    def in_init(self, actor: str) -> bool:
        """Is ``actor`` a thread of the sandbox's init?"""
        return self.task_of(actor).signal is self.task_of("t0").signal

    def task_of(self, name: str) -> Task:
        return self.side.names[name].handle.task_struct  # type: ignore[no-any-return]

    def stopped_tracees(self, tracer: str) -> list[str]:
        """The tasks ``tracer`` traces that sit in a ptrace stop, waiting for it."""
        return [name for name in self.related(tracer, tracees=True) if self.side.names[name].handle.state == "t"]

    def traced(self, name: str) -> bool:
        return any(thread.ptrace for thread in self.task_of(name).signal.thread_head)

    def tracing(self, name: str) -> bool:
        return any(thread.ptraced for thread in self.task_of(name).signal.thread_head)

    def tracer_of(self, name: str) -> str | None:
        """The ready task that traces ``name``, if there is one."""
        return next((t for t in self.ready_tasks() if name in self.stopped_tracees(t)), None)

    def target(self, actor: str, tracees: bool = False, init: bool = True) -> str:
        """A task for ``actor`` to act on: mostly one of its own (children or tracees), else any
        (but the sandbox's init, unless ``init``)."""
        own = self.related(actor, tracees)
        if own and self.rng.random() < 0.8:
            return self.rng.choice(own)
        return self.rng.choice([name for name in self.tasks() if init or name != "t0"])

    def play(self, line: str) -> Outcome:
        """Add one step (a line of the sequence language) and run it on the model."""
        from forklab.diff.compare import run_step

        step = parse_line(line, f"generated step {len(self.steps) + 1}", len(self.steps) + 1)
        assert step is not None
        outcome = run_step(self.side, len(self.steps), step)
        self.steps.append(step)
        if outcome.child is not None:
            parent, child = self.mm_of(step.actor), outcome.child.task_struct.mm
            if child is not None and child is not parent:
                for _, spaces in self.maps.values():
                    if any(space is parent for space in spaces):
                        spaces.append(child)
        return outcome

    def mm_of(self, name: str) -> object:
        from forklab.diff.sides import TaskRef

        ref = self.side.names[name]
        assert isinstance(ref, TaskRef)
        return ref.handle.task_struct.mm

    def maps_of(self, actor: str, length: int = 0) -> list[str]:
        """The address names that mean something in ``actor``'s address space."""
        mm = self.mm_of(actor)
        return [name for name, (size, spaces) in self.maps.items()
                if size >= length and any(space is mm for space in spaces)]  # fmt: skip

    def mapped(self, name: str, actor: str, length: int) -> None:
        self.maps[name] = (length, [self.mm_of(actor)])

    def step(self) -> None:
        ready = self.ready_tasks()
        if not ready:
            return
        tracers = [name for name in ready if self.stopped_tracees(name)]
        # A tracer mostly lets its stopped tracees go soon, as a debugger does.
        if tracers and self.rng.random() < 0.5:
            tracer = self.rng.choice(tracers)
            continue_tracee(self, tracer, self.rng.choice(self.stopped_tracees(tracer)))
            return
        actor = self.rng.choice(ready)
        action = self.rng.choices(ACTIONS, weights=[weight for _, weight in ACTIONS])[0][0]
        action(self, actor)


def one_of(rng: Chooser, items: tuple[str, ...]) -> str:
    return rng.choice(items)


def some_of(rng: Chooser, items: tuple[str, ...], most: int) -> str:
    chosen = rng.sample(items, rng.randint(0, most))
    return " | ".join(chosen) if chosen else "0"


# ---- actions ----------------------------------------------------------------------------------


def act_fork(g: Generator, actor: str) -> None:
    g.play(f"{g.fresh('t')} = {actor}.fork()")


def act_vfork(g: Generator, actor: str) -> None:
    child = g.fresh("t")
    g.play(f"{child} = {actor}.vfork()")
    if child in g.side.names:
        release_newborn(g, child)
        # A vfork child runs on its parent's memory and stack: it execs, or exits (also when
        # the exec failed), as real code does.
        if g.rng.random() < 0.5 and g.play(f"{child}.execve({one_of(g.rng, PATHS)!r}, ['x'])").status == OK:
            return
        g.play(f"{child}.exit({g.rng.randint(0, 3)})")


def act_thread(g: Generator, actor: str) -> None:
    stack = new_stack(g, actor)
    g.play(f"{g.fresh('t')} = {actor}.clone({PTHREAD}, stack={stack} + 65536, parent_tid={stack}, "
           f"child_tid={stack}, tls={stack})")  # fmt: skip


def act_clone(g: Generator, actor: str) -> None:
    flags = some_of(g.rng, CLONE_BITS, 5)
    signal = one_of(g.rng, ("SIGCHLD", "SIGCHLD", "0", "SIGUSR1"))
    stack = new_stack(g, actor) if "CLONE_VM" in flags else ""
    extra = f", stack={stack} + 65536, parent_tid={stack}, child_tid={stack}, tls={stack}" if stack else ""
    child = g.fresh("t")
    outcome = g.play(f"{child} = {actor}.clone({flags} | {signal}{extra})")
    if outcome.status == PENDING and child in g.side.names and "CLONE_VFORK" in flags:
        release_newborn(g, child)
        g.play(f"{child}.exit(0)")  # let its parent go


def act_clone3(g: Generator, actor: str) -> None:
    flags = some_of(g.rng, (*CLONE_BITS, "CLONE_CLEAR_SIGHAND", "CLONE_NEWTIME", "CLONE_PIDFD"), 4)
    signal = one_of(g.rng, ("SIGCHLD", "0", "SIGUSR2", "65"))
    word = words_for(g, actor)
    set_tid = one_of(g.rng, ("", "", "", ", set_tid=[1]", ", set_tid=[777]", ", set_tid=[0]"))
    stack = f", stack={new_stack(g, actor)}, stack_size=65536" if "CLONE_VM" in flags else ""
    child = g.fresh("t")
    outcome = g.play(f"{child} = {actor}.clone3(flags={flags}, exit_signal={signal}, pidfd={word} + 8, "
                     f"child_tid={word}, parent_tid={word} + 4{stack}{set_tid})")  # fmt: skip
    if outcome.status == PENDING and child in g.side.names and "CLONE_VFORK" in flags:
        release_newborn(g, child)
        g.play(f"{child}.exit(0)")


def act_exit(g: Generator, actor: str) -> None:
    call = one_of(g.rng, ("exit", "exit", "exit_group"))
    ends_init = actor == "t0" or (call == "exit_group" and g.in_init(actor))
    if ends_init and g.rng.random() < 0.9:
        return  # the sandbox's init rarely: its death ends everything, all its tasks dying at once
    g.play(f"{actor}.{call}({g.rng.randint(0, 255)})")


def act_wait(g: Generator, actor: str) -> None:
    options = one_of(g.rng, WAIT_OPTIONS)
    target = one_of(g.rng, ("-1", "-1", "0", "-99", *g.tasks()))
    g.play(f"{actor}.wait4({target}, {options})")


def act_exec(g: Generator, actor: str) -> None:
    if actor != "t0":
        g.play(f"{actor}.execve({one_of(g.rng, PATHS)!r}, ['x'])")


def act_unshare(g: Generator, actor: str) -> None:
    g.play(f"{actor}.unshare({some_of(g.rng, UNSHARE_BITS, 3)})")


def act_identity(g: Generator, actor: str) -> None:
    call = one_of(g.rng, ("getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getresuid", "uname",
                          "getcwd"))  # fmt: skip
    g.play(f"{actor}.{call}()")


def act_creds(g: Generator, actor: str) -> None:
    uid = one_of(g.rng, ("0", "1000", "1000", "70000", "-1"))
    call = one_of(g.rng, ("setresuid", "setresgid"))
    g.play(f"{actor}.{call}({uid}, {uid}, {uid})")


def act_rlimit(g: Generator, actor: str) -> None:
    resource = one_of(g.rng, ("RLIMIT_NPROC", "RLIMIT_NOFILE"))
    # A host puppet keeps its control channels at fds 32..63: it needs RLIMIT_NOFILE >= 64.
    value = g.rng.choice((2, 3, 5, 64, 100) if resource == "RLIMIT_NPROC" else (64, 70, 100))
    g.play(f"{actor}.setrlimit({resource}, ({value}, {value}))")


def act_files(g: Generator, actor: str) -> None:
    choice = g.rng.random()
    if choice < 0.4 or not g.fds:
        fd = g.fresh("fd")
        flags = one_of(g.rng, ("O_RDONLY", "O_RDWR | O_CREAT", "O_WRONLY | O_CREAT | O_TRUNC", "O_RDONLY | O_CLOEXEC"))
        if g.play(f"{fd} = {actor}.open({one_of(g.rng, FILES)!r}, {flags})").status == OK:
            g.fds[fd] = actor
        return
    fd = g.rng.choice(sorted(g.fds))
    call = one_of(g.rng, ("close", "dup", "read", "write", "fcntl_getfd", "lseek"))
    line = {
        "close": f"{actor}.close({fd})",
        "dup": f"{g.fresh('fd')} = {actor}.dup({fd})",
        "read": f"{actor}.read({fd}, 8)",
        "write": f"{actor}.write({fd}, b'hello')",
        "fcntl_getfd": f"{actor}.fcntl({fd}, F_GETFD)",
        "lseek": f"{actor}.lseek({fd}, 0, SEEK_SET)",
    }[call]
    g.play(line)


def act_fs(g: Generator, actor: str) -> None:
    if g.rng.random() < 0.5:
        g.play(f"{actor}.chdir({one_of(g.rng, ('/tmp', '/', '/proc', '/nope'))!r})")
    else:
        g.play(f"{actor}.umask({one_of(g.rng, ('0o022', '0o077', '0o000'))})")


def act_signals(g: Generator, actor: str) -> None:
    choice = g.rng.random()
    signal = one_of(g.rng, SIGNALS[:-1])
    if choice < 0.4:
        handler = one_of(g.rng, ("SIG_DFL", "SIG_IGN", "0x401000"))
        flags = one_of(g.rng, ("0", "SA_RESTART", "SA_NOCLDWAIT"))
        g.play(f"{actor}.sigaction({signal}, {handler}, {flags})")
    elif choice < 0.6:
        how = one_of(g.rng, ("SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK"))
        g.play(f"{actor}.sigprocmask({how}, 1 << ({signal} - 1))")
    else:
        target = one_of(g.rng, tuple(g.tasks()))
        g.play(f"{actor}.kill({target}, {one_of(g.rng, SIGNALS)})")


def act_jobctl(g: Generator, actor: str) -> None:
    signal = one_of(g.rng, STOP_SIGNALS)
    target = g.target(actor)
    if g.rng.random() < 0.8:
        g.play(f"{actor}.kill({target}, {signal})")
    else:
        g.play(f"{actor}.tgkill({target}, {target}, {signal})")


def act_pgrp(g: Generator, actor: str) -> None:
    """A process group of its own: job-control stops act only in a group that is not orphaned."""
    if g.rng.random() < 0.7:
        g.play(f"{actor}.setpgid(0, 0)")
    else:
        g.play(f"{actor}.setpgid({g.target(actor)}, 0)")


def act_waitid(g: Generator, actor: str) -> None:
    idtype = one_of(g.rng, WAITID_TYPES)
    ident = {"P_ALL": "0", "P_PID": g.target(actor), "P_PGID": one_of(g.rng, ("0", g.target(actor)))}[idtype]
    options = some_of(g.rng, WAITID_OPTIONS, 3)
    g.play(f"{actor}.waitid({idtype}, {ident}, {options})")


def act_pidfd(g: Generator, actor: str) -> None:
    pidfds = sorted(g.pidfds)
    if g.rng.random() < 0.4 or not pidfds:
        fd = g.fresh("fd")
        if g.play(f"{fd} = {actor}.pidfd_open({g.target(actor)}, {one_of(g.rng, PIDFD_FLAGS)})").status == OK:
            g.fds[fd] = actor
            g.pidfds[fd] = actor
        return
    fd = g.rng.choice(pidfds)
    if g.rng.random() < 0.6:
        g.play(f"{actor}.pidfd_send_signal({fd}, {one_of(g.rng, PIDFD_SIGNALS)}, {one_of(g.rng, PIDFD_SCOPES)})")
    else:
        g.play(f"{actor}.waitid(P_PIDFD, {fd}, {some_of(g.rng, WAITID_OPTIONS, 3)})")


def act_ptrace(g: Generator, actor: str) -> None:
    """Trace a task (mostly a child of the actor's), then often act on it as its tracer at once."""
    if g.related(actor, tracees=True) and g.rng.random() < 0.85:
        tracer_request(g, actor, g.target(actor, tracees=True))
        return
    if g.tasks() == ["t0"]:
        return
    # Never the sandbox's init: its tracer's death (PTRACE_O_EXITKILL) would end the sandbox.
    target = g.target(actor, init=False)
    # No chains of tracers: a traced tracer races with the stops it causes, and tracers in a
    # ring, killed, each wait in their exit event for the other, for ever.
    if g.traced(actor) or g.tracing(target):
        return
    if g.rng.random() < 0.6:
        line = f"{actor}.ptrace(PTRACE_SEIZE, {target}, 0, {trace_options(g)})"
    else:
        line = f"{actor}.ptrace(PTRACE_ATTACH, {target})"
    if g.play(line).status == OK and actor in g.ready_tasks() and g.rng.random() < 0.5:
        tracer_request(g, actor, target)


def tracer_request(g: Generator, actor: str, tracee: str) -> None:
    """Let the tracee go, stop it, kill it, set its options, or wait for it."""
    request = one_of(g.rng, ("CONT", "CONT", "WAIT", "WAIT", "DETACH", "INTERRUPT", "SETOPTIONS", "KILL"))
    if request == "WAIT":
        g.play(f"{actor}.wait4({tracee}, {one_of(g.rng, ('__WALL', '__WALL | WNOHANG', 'WNOHANG', '0'))})")
    elif request in ("CONT", "DETACH"):
        g.play(f"{actor}.ptrace(PTRACE_{request}, {tracee}, 0, {one_of(g.rng, PTRACE_CONT_SIGNALS)})")
    elif request == "SETOPTIONS":
        g.play(f"{actor}.ptrace(PTRACE_SETOPTIONS, {tracee}, 0, {trace_options(g)})")
    else:
        g.play(f"{actor}.ptrace(PTRACE_{request}, {tracee})")


def trace_options(g: Generator) -> str:
    """Options for SEIZE or SETOPTIONS; event options about half the time."""
    options = one_of(g.rng, PTRACE_OPTIONS)
    return f"{options} | {some_of(g.rng, EVENT_OPTIONS, 3)}" if g.rng.random() < 0.5 else options


def continue_tracee(g: Generator, tracer: str, tracee: str) -> None:
    """What a debugger does at a stop: wait for it, perhaps read the event's message or change the
    options, and continue."""
    g.play(f"{tracer}.wait4({tracee}, __WALL | WNOHANG)")
    if g.rng.random() < 0.3:
        words = words_for(g, tracer)
        g.play(f"{tracer}.ptrace(PTRACE_GETEVENTMSG, {tracee}, 0, {words})")
        g.play(f"{tracer}.peek({words}, 8)")
    if g.rng.random() < 0.2:
        g.play(f"{tracer}.ptrace(PTRACE_SETOPTIONS, {tracee}, 0, {trace_options(g)})")
    g.play(f"{tracer}.ptrace(PTRACE_CONT, {tracee}, 0, 0)")


def release_newborn(g: Generator, child: str) -> None:
    """A vfork child traced from birth is stopped: its tracer lets it go, so it can exec or exit."""
    tracer = g.tracer_of(child)
    if tracer is not None:
        continue_tracee(g, tracer, child)


def act_memory(g: Generator, actor: str) -> None:
    choice = g.rng.random()
    own = g.maps_of(actor)
    if choice < 0.35 or not own:
        name = g.fresh("m")
        length = g.rng.choice((4096, 8192, 65536))
        if g.play(f"{name} = {actor}.mmap({length})").status == OK:
            g.mapped(name, actor, length)
        return
    addr = g.rng.choice(own)
    call = g.rng.random()
    if call < 0.35:
        g.play(f"{actor}.poke({addr}, b'{g.rng.choice(('abcd', 'wxyz', '1234'))}')")
    elif call < 0.7:
        g.play(f"{actor}.peek({addr}, 4)")
    else:
        advice = one_of(g.rng, ("MADV_DONTFORK", "MADV_DOFORK", "MADV_WIPEONFORK", "MADV_DONTNEED"))
        g.play(f"{actor}.madvise({addr}, 4096, {advice})")


def act_subreaper(g: Generator, actor: str) -> None:
    g.play(f"{actor}.prctl(PR_SET_CHILD_SUBREAPER, {g.rng.randint(0, 1)})")


def act_pdeath(g: Generator, actor: str) -> None:
    g.play(f"{actor}.prctl(PR_SET_PDEATHSIG, {one_of(g.rng, ('SIGKILL', 'SIGUSR1', '0'))})")


def act_sched(g: Generator, actor: str) -> None:
    """Nice values and policies; no SCHED_IDLE or high nice, which would slow a host puppet to a
    crawl on a loaded machine."""
    target = one_of(g.rng, ("0", "0", *g.tasks()))
    choice = g.rng.random()
    policy = one_of(g.rng, ("SCHED_NORMAL", "SCHED_BATCH", "SCHED_FIFO", "SCHED_BATCH | SCHED_RESET_ON_FORK"))
    priority = 1 if "FIFO" in policy else 0
    if choice < 0.3:
        g.play(f"{actor}.setpriority(PRIO_PROCESS, {target}, {g.rng.choice((-1, 0, 2, 5))})")
    elif choice < 0.5:
        g.play(f"{actor}.getpriority(PRIO_PROCESS, {target})")
    elif choice < 0.65:
        g.play(f"{actor}.sched_setscheduler({target}, {policy}, {priority})")
    elif choice < 0.8:
        flags = one_of(g.rng, ("0", "SCHED_FLAG_RESET_ON_FORK"))
        g.play(f"{actor}.sched_setattr({target}, {policy.split()[0]}, flags={flags}, priority={priority}, "
               f"nice={g.rng.choice((0, 1, 4))}, runtime={g.rng.choice((0, 3000000))})")  # fmt: skip
    else:
        g.play(f"{actor}.{one_of(g.rng, ('sched_getattr', 'sched_getscheduler', 'sched_getparam'))}({target})")


def words_for(g: Generator, actor: str) -> str:
    """A mapping of ``actor``'s to hold tid and pidfd words."""
    own = g.maps_of(actor)
    return own[0] if own else new_stack(g, actor)


def new_stack(g: Generator, actor: str) -> str:
    """A fresh 64 KiB mapping for a new task that shares ``actor``'s memory: on the host it runs
    on it, so two live tasks never share one (real code never does)."""
    name = g.fresh("m")
    if g.play(f"{name} = {actor}.mmap(65536)").status == OK:
        g.mapped(name, actor, 65536)
    return name


ACTIONS: tuple[tuple[Callable[[Generator, str], None], int], ...] = (
    (act_fork, 10),
    (act_vfork, 3),
    (act_thread, 5),
    (act_clone, 10),
    (act_clone3, 6),
    (act_exit, 8),
    (act_wait, 8),
    (act_exec, 3),
    (act_unshare, 3),
    (act_identity, 5),
    (act_creds, 3),
    (act_rlimit, 2),
    (act_files, 6),
    (act_fs, 3),
    (act_signals, 5),
    (act_memory, 6),
    (act_pdeath, 2),
    (act_subreaper, 2),
    (act_sched, 2),
    (act_jobctl, 5),
    (act_pgrp, 2),
    (act_waitid, 4),
    (act_pidfd, 4),
    (act_ptrace, 7),
)


def random_scenario(seed: int, steps: int = 20, version: str = "6.18") -> Scenario:
    """A sequence of about ``steps`` calls, chosen by playing the model from ``seed``."""
    return play(random.Random(seed), steps, version, f"random seed {seed}")


def play(rng: Chooser, steps: int, version: str, name: str) -> Scenario:
    generator = Generator(rng, ModelSide(version))
    while len(generator.steps) < steps and generator.ready_tasks():
        generator.step()
    return Scenario(generator.steps, name=name)


# ---- shrinking ----------------------------------------------------------------------------------


def shrink(scenario: Scenario, fails: Callable[[Scenario], bool]) -> Scenario:
    """Delta debugging: the smallest subsequence of steps for which ``fails`` still holds."""
    steps = list(scenario.steps)
    chunk = max(1, len(steps) // 2)
    while chunk >= 1:
        start = 0
        shrunk = False
        while start < len(steps):
            candidate = steps[:start] + steps[start + chunk :]
            if candidate and still_fails(candidate, scenario.name, fails):
                steps = candidate
                shrunk = True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return Scenario(steps, name=f"{scenario.name} (shrunk)")


def still_fails(steps: list[Step], name: str, fails: Callable[[Scenario], bool]) -> bool:
    try:
        return fails(Scenario(steps, name))
    except ScenarioError:
        return False  # a step lost the name it needs
