"""kernel/pid.c: struct pid, pid numbers in every namespace, attaching tasks to pids."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.kernel.pid_namespace import (
    PIDNS_ADDING,
    RESERVED_PIDS,
    PidNamespace,
    checkpoint_or_admin,
    get_pid_ns,
    pid_max_of,
    put_pid_ns,
    task_active_pid_ns,
)
from forklab.kernel.sched.core import wake_up_process
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

PIDTYPE_PID = 0
PIDTYPE_TGID = 1
PIDTYPE_PGID = 2
PIDTYPE_SID = 3
PIDTYPE_MAX = 4


class Pid:
    """struct pid: one number per namespace level, and the tasks using it per pid type.

    ``tasks[PIDTYPE_PID]`` and ``tasks[PIDTYPE_TGID]`` hold at most one task (or None);
    the process-group and session slots hold a dict of leaders (or None when empty), so
    a pid costs little until it names a group.
    """

    __slots__ = ("count", "level", "numbers", "tasks")

    def __init__(self, numbers: tuple[tuple[int, PidNamespace], ...]) -> None:
        self.count = 1
        self.level = len(numbers) - 1
        self.numbers = numbers
        self.tasks: list[object] = [None, None, None, None]

    def __repr__(self) -> str:
        return f"<pid {'/'.join(str(nr) for nr, _ in self.numbers)}>"


def get_pid(pid: Pid) -> Pid:
    pid.count += 1
    return pid


def put_pid(k: Machine, pid: Pid | None) -> None:
    if pid is None:
        return
    pid.count -= 1
    if pid.count == 0:
        k.kmem_cache_free("pid")
        put_pid_ns(k, pid.numbers[-1][1])


def idr_alloc_cyclic(ns: PidNamespace, start: int, end: int) -> int:
    """The lowest free id at or above the cursor, else at or above ``start``; -1 if none is free."""
    idr = ns.idr
    first = max(ns.idr_next, start)
    for low in (first, start) if first > start else (first,):
        nr = low
        while nr < end and nr in idr:
            nr += 1
        if nr < end:
            ns.idr_next = nr + 1
            return nr
    return -1


@traced
def alloc_pid(k: Machine, current: Task, ns: PidNamespace, set_tid: tuple[int, ...] = ()) -> Pid:
    """A pid with a number at every level from ``ns`` up to the initial namespace.

    ``set_tid[0]`` asks for the number in ``ns`` itself, ``set_tid[1]`` in its parent, and so on.
    """
    if len(set_tid) > ns.level + 1:
        raise KernelError(E.EINVAL, "alloc_pid: set_tid has more entries than there are pid namespace levels")
    k.kmem_cache_alloc(current, "pid")
    reserved: list[tuple[int, PidNamespace]] = []
    try:
        tmp: PidNamespace | None = ns
        depth = 0
        while tmp is not None:
            pid_max = pid_max_of(k, tmp)
            tid = 0
            if depth < len(set_tid):
                tid = set_tid[depth]
                check_set_tid(current, tmp, tid, pid_max)
            # idr_preload: the radix tree may need a node.
            k.kmem_cache_alloc(current, "radix_tree_node")
            k.kmem_cache_free("radix_tree_node")
            if tid:
                if tid in tmp.idr:
                    raise KernelError(E.EEXIST, f"alloc_pid: set_tid {tid} is in use (level {tmp.level})")
                nr = tid
            else:
                pid_min = RESERVED_PIDS if tmp.idr_next > RESERVED_PIDS else 1
                nr = idr_alloc_cyclic(tmp, pid_min, pid_max)
                if nr < 0:
                    raise KernelError(E.EAGAIN, f"alloc_pid: no free pid below pid_max={pid_max} (level {tmp.level})")
            tmp.idr[nr] = None
            reserved.append((nr, tmp))
            tmp = tmp.parent
            depth += 1
        if not ns.pid_allocated & PIDNS_ADDING:
            raise KernelError(E.ENOMEM, "alloc_pid: the pid namespace's init has exited (PIDNS_ADDING cleared)")
    except KernelError:
        for nr, owner in reserved:
            del owner.idr[nr]
        if ns.pid_allocated == PIDNS_ADDING:
            ns.idr_next = 0
        k.kmem_cache_free("pid")
        raise
    get_pid_ns(ns)
    reserved.reverse()
    pid = Pid(tuple(reserved))
    for nr, owner in reserved:
        owner.idr[nr] = pid
        owner.pid_allocated += 1
    return pid


def check_set_tid(current: Task, ns: PidNamespace, tid: int, pid_max: int) -> None:
    """One set_tid entry: its range, a reaper to exist unless it asks for 1, the capability."""
    if tid < 1 or tid >= pid_max:
        raise KernelError(E.EINVAL, f"alloc_pid: set_tid {tid} is outside 1..pid_max-1 (level {ns.level})")
    if tid != 1 and ns.child_reaper is None:
        raise KernelError(E.EINVAL, f"alloc_pid: set_tid {tid} in a pid namespace that has no init yet")
    if not checkpoint_or_admin(current, ns):
        raise KernelError(E.EPERM, "alloc_pid: set_tid needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN")


@traced
def free_pid(k: Machine, pid: Pid) -> None:
    """Give the numbers back; the struct lives on while references remain."""
    for nr, ns in pid.numbers:
        ns.pid_allocated -= 1
        if ns.pid_allocated in (1, 2) and ns.child_reaper is not None:
            wake_up_process(k, ns.child_reaper)
        elif ns.pid_allocated == PIDNS_ADDING:
            ns.pid_allocated = 0
        del ns.idr[nr]
    put_pid(k, pid)


def pid_has_task(pid: Pid, kind: int) -> bool:
    return bool(pid.tasks[kind])


def attach_pid(task: Task, kind: int) -> None:
    """Link the task into the pid its type points at (thread_pid or signal.pids)."""
    pid = task_pid_ptr(task, kind)
    if kind <= PIDTYPE_TGID:
        pid.tasks[kind] = task
    else:
        members = pid.tasks[kind]
        if members is None:
            pid.tasks[kind] = {task: None}
        else:
            members[task] = None  # type: ignore[index]


def detach_pid(task: Task, kind: int, freed: list[Pid]) -> None:
    """Unlink; a pid no task uses any more goes on ``freed`` for free_pid."""
    change_pid(task, kind, None, freed)


def change_pid(task: Task, kind: int, new: Pid | None, freed: list[Pid]) -> None:
    """Move the task from its pid of ``kind`` to ``new`` (detach when None); the old pid goes on
    ``freed`` if nothing uses it any more."""
    pid = task_pid_ptr(task, kind)
    if kind <= PIDTYPE_TGID:
        pid.tasks[kind] = None
    else:
        members = pid.tasks[kind]
        del members[task]  # type: ignore[attr-defined]
        if not members:
            pid.tasks[kind] = None
    set_task_pid_ptr(task, kind, new)
    if new is not None:
        attach_pid(task, kind)
    if not any(pid.tasks):
        freed.append(pid)


def exchange_tids(left: Task, right: Task) -> None:
    """Swap two tasks' thread pids (de_thread: the exec'ing thread takes the leader's)."""
    ours, theirs = left.thread_pid, right.thread_pid
    assert ours is not None and theirs is not None
    ours.tasks[PIDTYPE_PID], theirs.tasks[PIDTYPE_PID] = right, left
    left.thread_pid, right.thread_pid = theirs, ours
    left.pid, right.pid = pid_nr(theirs), pid_nr(ours)


def transfer_pid(old: Task, new: Task, kind: int) -> None:
    """``new`` takes ``old``'s place among the users of its group pid of ``kind``."""
    pid = task_pid_ptr(old, kind)
    if kind == PIDTYPE_TGID:
        pid.tasks[kind] = new
        return
    members = cast("dict[Task, None]", pid.tasks[kind])
    pid.tasks[kind] = {new if task is old else task: None for task in members}


def task_pid_ptr(task: Task, kind: int) -> Pid:
    if kind == PIDTYPE_PID:
        pid = task.thread_pid
    else:
        pid = task.signal.pids[kind]
    assert pid is not None
    return pid


def set_task_pid_ptr(task: Task, kind: int, pid: Pid | None) -> None:
    if kind == PIDTYPE_PID:
        task.thread_pid = pid
    else:
        task.signal.pids[kind] = pid


def pid_task(pid: Pid | None, kind: int) -> Task | None:
    """The first task attached to ``pid`` as ``kind``."""
    if pid is None:
        return None
    entry = pid.tasks[kind]
    if entry is None or kind <= PIDTYPE_TGID:
        return entry  # type: ignore[return-value]
    return next(iter(entry))  # type: ignore[call-overload,no-any-return]


def pid_tasks(pid: Pid, kind: int) -> list[Task]:
    """Every task attached to ``pid`` as ``kind`` (do_each_pid_task)."""
    entry = pid.tasks[kind]
    if entry is None:
        return []
    if kind <= PIDTYPE_TGID:
        return [cast("Task", entry)]
    return list(cast("dict[Task, None]", entry))


def pid_nr_ns(pid: Pid | None, ns: PidNamespace) -> int:
    """The number of ``pid`` in ``ns``; 0 when the pid is not visible there."""
    if pid is not None and ns.level <= pid.level:
        nr, owner = pid.numbers[ns.level]
        if owner is ns:
            return nr
    return 0


def pid_nr(pid: Pid | None) -> int:
    return pid.numbers[0][0] if pid is not None else 0


def find_pid_ns(nr: int, ns: PidNamespace) -> Pid | None:
    return ns.idr.get(nr)


def find_task_by_pid_ns(nr: int, ns: PidNamespace) -> Task | None:
    return pid_task(ns.idr.get(nr), PIDTYPE_PID)


def task_pid_nr_ns(task: Task, kind: int, ns: PidNamespace) -> int:
    """task_pid_nr_ns / task_tgid_nr_ns / task_pgrp_nr_ns / task_session_nr_ns."""
    if kind == PIDTYPE_PID:
        return pid_nr_ns(task.thread_pid, ns)
    if kind == PIDTYPE_TGID:
        return pid_nr_ns(task.group_leader.thread_pid, ns)
    return pid_nr_ns(task.signal.pids[kind], ns)


def task_pid_vnr(task: Task, kind: int, viewer: Task) -> int:
    """The number as ``viewer`` (normally current) sees it."""
    return task_pid_nr_ns(task, kind, task_active_pid_ns(viewer))


def is_child_reaper(pid: Pid) -> bool:
    return pid.numbers[-1][0] == 1
