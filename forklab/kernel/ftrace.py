"""The function tracer (kernel/trace/ftrace.c, trace_functions_graph.c): every entry into and
return from the model's kernel functions, with the task, its CPU, the depth and the virtual time.

``@traced`` only registers a function and hands it back unchanged, so a model that is not
traced pays nothing on its hot paths. ``enable`` swaps a recording wrapper in for each
registered function, in every forklab module that holds it, much as the kernel patches its
mcount call sites; ``disable`` puts the originals back once no machine traces. A wrapper
records only for a machine whose ``ftrace`` is set and is a plain call for any other.

Times are the machine's virtual clock (``k.now``), which advances per system call: a function
that returns within the call it was entered in takes 0 ns. A call that sleeps (``WouldBlock``)
has not returned from its functions: they return when the retry that runs once the task is
woken finishes, with the time asleep in their duration, as the kernel's graph shows it.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from forklab.kernel.errors import KernelError, WouldBlock
from forklab.kernel.version import Behaviour, KernelVersion

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

F = TypeVar("F", bound=Callable[..., Any])

# The registered functions by their Python name, which is their kernel name.
TRACED: dict[str, Callable[..., Any]] = {}

# Names the kernel changed: for each function, newest first, the behaviour that brought the
# name in use after it and the name the function had before that behaviour.
RENAMED: dict[str, tuple[tuple[Behaviour, str], ...]] = {
    "kernel_clone": ((Behaviour.KERNEL_CLONE, "_do_fork"), (Behaviour.DO_FORK_TLS, "do_fork")),
    "copy_thread": ((Behaviour.COPY_THREAD_TLS_FOLDED, "copy_thread_tls"), (Behaviour.DO_FORK_TLS, "copy_thread")),
}

ENTRY = "entry"
RETURN = "return"
# Records kept, as tracefs's ring buffer keeps a bounded number: the oldest go first.
RECORDS_MAX = 200_000


def traced(fn: F) -> F:
    """Register a kernel function (its first parameter is the machine ``k``) for tracing."""
    if fn.__code__.co_varnames[:1] != ("k",):
        raise TypeError(f"@traced {fn.__name__}: the first parameter must be the machine, k")
    TRACED[fn.__name__] = fn
    return fn


def kernel_name(version: KernelVersion, name: str) -> str:
    """What the kernel of ``version`` calls the function the model calls ``name``."""
    for behaviour, older in RENAMED.get(name, ()):
        if version.has(behaviour):
            break
        name = older
    return name


def traceable_functions(version: KernelVersion) -> list[str]:
    """Every traced function, under the names of ``version``, sorted."""
    return sorted(kernel_name(version, name) for name in TRACED)


class FuncRecord(NamedTuple):
    """One entry or return, as the ring buffer keeps it."""

    kind: str  # ENTRY or RETURN
    name: str  # the kernel's name for the selected version
    ts: int  # ns of virtual time
    cpu: int
    pid: int  # the current task's pid and tgid (its global numbers) and comm
    tgid: int
    comm: str
    depth: int  # 0 for the outermost traced function
    parent: str  # the traced function it was called from ("" at depth 0)
    calltime: int  # a return's entry time (equal to ts for an entry)
    errno: int  # a return by KernelError: its errno; else 0
    # Tracepoint events written before it: where it falls among them, at equal times.
    events_before: int


class Frame:
    """A traced function under way: what a debugger shows of it."""

    __slots__ = ("args", "depth", "error", "fn", "name", "parent", "result", "task", "ts")

    def __init__(
        self, fn: Callable[..., Any], name: str, parent: str, args: tuple[Any, ...], task: Task, depth: int, ts: int
    ) -> None:
        self.fn = fn  # the model's function (its Python name is the current kernel name)
        self.name = name
        self.parent = parent
        self.args = args
        self.task = task
        self.depth = depth
        self.ts = ts
        self.result: Any = None
        self.error: BaseException | None = None


# Told of each entry and return: (ENTRY or RETURN, the frame, the tracer).
Listener = Callable[[str, Frame, "FunctionTracer"], None]


class FunctionTracer:
    """One machine's function tracer: its records and the stack of functions under way."""

    def __init__(self, version: KernelVersion, listener: Listener | None = None, size: int = RECORDS_MAX) -> None:
        self.names = {name: kernel_name(version, name) for name in TRACED}
        self.records: deque[FuncRecord] = deque(maxlen=size)
        self.stack: list[Frame] = []
        self.listener = listener

    def enter(self, k: Machine, name: str, args: tuple[Any, ...]) -> Frame:
        task = k.current or k.init_task
        stack = self.stack
        parent = stack[-1].name if stack else ""
        frame = Frame(TRACED[name], self.names[name], parent, args, task, len(stack), k.now)
        stack.append(frame)
        self.record(k, ENTRY, frame, frame.ts, 0)
        if self.listener is not None:
            self.listener(ENTRY, frame, self)
        return frame

    def leave(self, k: Machine, frame: Frame, result: Any, error: BaseException | None) -> None:
        self.stack.pop()
        if isinstance(error, WouldBlock):
            self.sleep(k, frame, error)
            return
        frame.result = result
        frame.error = error
        self.record(k, RETURN, frame, k.now, error.errno if isinstance(error, KernelError) else 0)
        if self.listener is not None:
            self.listener(RETURN, frame, self)

    def sleep(self, k: Machine, frame: Frame, block: WouldBlock) -> None:
        """The call sleeps inside ``frame``'s function, which returns only once the retry that
        runs when the task is woken has finished: the frame is back on the stack for it."""
        retry = block.retry

        def resumed() -> Any:
            if k.ftrace is not self:
                return retry()
            self.stack.append(frame)
            try:
                result = retry()
            except BaseException as err:
                self.leave(k, frame, None, err)
                raise
            self.leave(k, frame, result, None)
            return result

        block.retry = resumed

    def record(self, k: Machine, kind: str, frame: Frame, ts: int, errno: int) -> None:
        task = frame.task
        self.records.append(
            FuncRecord(
                kind, frame.name, ts, task.cpu, task.pid, task.tgid, task.comm,
                frame.depth, frame.parent, frame.ts, errno, k.trace.written,
            )
        )  # fmt: skip


def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = fn.__name__

    @functools.wraps(fn)
    def recording(k: Machine, *args: Any, **kwargs: Any) -> Any:
        tracer = k.ftrace
        if tracer is None:
            return fn(k, *args, **kwargs)
        frame = tracer.enter(k, name, args)
        try:
            result = fn(k, *args, **kwargs)
        except BaseException as err:
            tracer.leave(k, frame, None, err)
            raise
        tracer.leave(k, frame, result, None)
        return result

    return recording


# The wrappers while installed, by the id of the original they stand for; and the machines tracing.
_wrappers: dict[int, Callable[..., Any]] = {}
_tracing = 0


def swap_in_forklab_modules(replacements: dict[int, Callable[..., Any]]) -> None:
    """Replace each function whose id is a key, wherever a forklab module holds it by name."""
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith("forklab"):
            continue
        namespace = vars(module)
        for attr, value in list(namespace.items()):
            replacement = replacements.get(id(value))
            if replacement is not None:
                namespace[attr] = replacement


def enable(k: Machine, listener: Listener | None = None, size: int = RECORDS_MAX) -> FunctionTracer:
    """Start tracing ``k`` (a fresh record); the first machine to trace installs the wrappers."""
    global _tracing
    if k.ftrace is None:
        _tracing += 1
        if _tracing == 1:
            _wrappers.update({id(fn): wrap(fn) for fn in TRACED.values()})
            swap_in_forklab_modules(_wrappers)
    tracer = k.ftrace = FunctionTracer(k.version, listener, size)
    return tracer


@contextlib.contextmanager
def tracing(k: Machine, listener: Listener | None = None, size: int = RECORDS_MAX) -> Iterator[FunctionTracer]:
    """Trace ``k`` for the length of a ``with`` block."""
    tracer = enable(k, listener, size)
    try:
        yield tracer
    finally:
        disable(k)


def disable(k: Machine) -> None:
    """Stop tracing ``k``; the last machine to stop puts the original functions back."""
    global _tracing
    if k.ftrace is None:
        return
    k.ftrace = None
    _tracing -= 1
    if _tracing == 0:
        originals = {id(_wrappers[id(fn)]): fn for fn in TRACED.values()}
        swap_in_forklab_modules(originals)
        _wrappers.clear()
