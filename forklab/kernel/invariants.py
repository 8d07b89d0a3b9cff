"""Consistency checks over the whole model: what CONFIG_DEBUG_* options and WARN_ONs would catch.

``check`` walks every task from the pid maps, recounts every reference the kernel counts,
and compares: the task tree and thread groups, the pid maps, each shared structure's
count, the RLIMIT_NPROC charges, the cgroups' task lists and pids charges, the deadline
bandwidth and the number of live objects per slab cache.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, cast

from forklab.kernel.cgroup.cgroup import check_cgroups
from forklab.kernel.errors import KernelBug
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_PID, PIDTYPE_SID, PIDTYPE_TGID, pid_task
from forklab.kernel.pid_namespace import PIDNS_ADDING, PidNamespace
from forklab.kernel.sched.core import dl_policy
from forklab.kernel.sched.deadline import dl_server_total_bw
from forklab.kernel.task import EXIT_DEAD, TASK_DEAD, Task
from forklab.kernel.ucount import UCOUNT_RLIMIT_NPROC

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.mm.mm import MmStruct
    from forklab.kernel.mm.pages import Layer
    from forklab.kernel.ucount import Ucounts


def all_tasks(k: Machine) -> list[Task]:
    """Every task that has a pid, in pid order, plus the idle tasks."""
    tasks = []
    for nr in sorted(k.init_pid_ns.idr):
        task = pid_task(k.init_pid_ns.idr[nr], PIDTYPE_PID)
        if task is not None:
            tasks.append(task)
    return list(k.idle_tasks) + tasks


def check(k: Machine) -> None:
    """Raise KernelBug listing every inconsistency found."""
    problems: list[str] = []
    tasks = all_tasks(k)
    check_tree(k, tasks, problems)
    check_pids(k, tasks, problems)
    check_counts(k, tasks, problems)
    check_cgroups(k, tasks, problems)
    check_dl_bw(k, tasks, problems)
    if problems:
        raise KernelBug("model invariants broken:\n  " + "\n  ".join(problems))


def check_tree(k: Machine, tasks: list[Task], problems: list[str]) -> None:
    user_tasks = [t for t in tasks if t.pid]
    if k.nr_threads != len(user_tasks):
        problems.append(f"nr_threads is {k.nr_threads} but {len(user_tasks)} tasks have pids")
    leaders = [t for t in user_tasks if t.exit_signal >= 0]
    if set(k.tasks) != set(leaders):
        problems.append(f"the task list holds {len(k.tasks)} leaders, the pid maps {len(leaders)}")
    if sum(k.process_counts) != len(leaders):
        problems.append(f"process_counts sum to {sum(k.process_counts)}, not {len(leaders)}")
    for t in user_tasks:
        if t.state == TASK_DEAD and t.exit_state != EXIT_DEAD and t.exit_state == 0:
            problems.append(f"{t} is TASK_DEAD without an exit state")
        if t.group_leader.signal is not t.signal:
            problems.append(f"{t} has another signal_struct than its leader {t.group_leader}")
        if t not in t.signal.thread_head:
            problems.append(f"{t} is missing from its thread list")
        if t.exit_signal >= 0:
            parent = t.real_parent
            if parent is None or t not in parent.children:
                problems.append(f"{t} is not among its real parent's children")
        elif t.group_leader is t:
            problems.append(f"{t} is its own leader but has exit_signal -1")
        for child in t.children:
            if child.real_parent is not t:
                problems.append(f"{child} is a child of {t} but its real parent is {child.real_parent}")
    for leader in leaders:
        signal = leader.signal
        if signal.nr_threads != len(signal.thread_head):
            problems.append(f"{leader}: nr_threads {signal.nr_threads} but {len(signal.thread_head)} threads")
        live = sum(1 for t in signal.thread_head if not t.flags & 0x4)
        if signal.live != live:
            problems.append(f"{leader}: signal->live is {signal.live} but {live} threads have not begun exiting")
    for rq in k.rq:
        queued = sum(1 for t in user_tasks if t.on_rq and t.cpu == rq.cpu)
        if rq.nr_running != queued:
            problems.append(f"cpu{rq.cpu}: nr_running {rq.nr_running} but {queued} tasks are queued there")


def check_dl_bw(k: Machine, tasks: list[Task], problems: list[str]) -> None:
    """The root domain holds exactly the bandwidth of the fair servers and of the deadline tasks
    that have not died."""
    held = sum(t.dl.dl_bw for t in tasks if dl_policy(t.policy) and t.state != TASK_DEAD)
    held += dl_server_total_bw(k)
    if k.dl_bw.total_bw != held:
        problems.append(f"dl_bw total_bw is {k.dl_bw.total_bw} but the servers and live deadline tasks hold {held}")


def check_pids(k: Machine, tasks: list[Task], problems: list[str]) -> None:
    namespaces: set[PidNamespace] = set()
    for t in tasks:
        if not t.pid:
            continue
        pid = t.thread_pid
        if pid is None:
            problems.append(f"{t} has no pid")
            continue
        for nr, ns in pid.numbers:
            namespaces.add(ns)
            if ns.idr.get(nr) is not pid:
                problems.append(f"{t}: pid {nr} at level {ns.level} is not in its namespace's idr")
        if pid.tasks[PIDTYPE_PID] is not t:
            problems.append(f"{t} is not attached to its own pid")
        if pid.numbers[0][0] != t.pid:
            problems.append(f"{t}: task->pid {t.pid} differs from its pid's global number {pid.numbers[0][0]}")
        if t.exit_signal >= 0:
            signal = t.signal
            for kind in (PIDTYPE_TGID, PIDTYPE_PGID, PIDTYPE_SID):
                attached = signal.pids[kind]
                entry = attached.tasks[kind] if attached is not None else None
                if attached is None or not (entry is t or (isinstance(entry, dict) and t in entry)):
                    problems.append(f"{t} is not attached to its pid of type {kind}")
    for ns in namespaces:
        allocated = ns.pid_allocated & ~PIDNS_ADDING
        if allocated != len(ns.idr):
            problems.append(f"{ns}: pid_allocated {allocated} but {len(ns.idr)} numbers in the idr")
        for nr, pid in ns.idr.items():
            if pid is None:
                problems.append(f"{ns}: pid {nr} is reserved but never published")


# Each shared structure: the task fields that reference it, and the count it keeps.
SHARED: dict[str, tuple[tuple[str, ...], str]] = {
    "files": (("files",), "count"),
    "fs": (("fs",), "users"),
    "sighand": (("sighand",), "count"),
    "mm": (("mm",), "mm_users"),
    "nsproxy": (("nsproxy",), "count"),
    "cred": (("cred", "real_cred"), "usage"),
}


def check_counts(k: Machine, tasks: list[Task], problems: list[str]) -> None:
    """Recount the references of every shared structure and every slab cache."""
    refs: dict[str, Counter[int]] = {name: Counter() for name in SHARED}
    objects: dict[str, dict[int, object]] = {name: {} for name in SHARED}
    nproc: Counter[int] = Counter()
    ucount_entries = {id(u): u for u in k.ucounts.entries.values()}
    for t in tasks:
        for name, (fields, _) in SHARED.items():
            for field in fields:
                shared = getattr(t, field)
                if shared is not None:
                    refs[name][id(shared)] += 1
                    objects[name][id(shared)] = shared
        # Every task made by copy_process is charged, idle tasks included; init_task is not.
        if t is not k.init_task and t.exit_state != EXIT_DEAD:
            entry: Ucounts | None = t.real_cred.ucounts
            while entry is not None:
                nproc[id(entry)] += 1
                entry = entry.ns.ucounts
    for name, counter in refs.items():
        count_field = SHARED[name][1]
        for key, expected in counter.items():
            shared = objects[name][key]
            actual = getattr(shared, count_field)
            if actual != expected:
                problems.append(f"{name} {shared!r}: count {actual}, but {expected} references found")
    for key, entry in ucount_entries.items():
        if entry.rlimit[UCOUNT_RLIMIT_NPROC] != nproc.get(key, 0):
            problems.append(
                f"{entry}: RLIMIT_NPROC charge {entry.rlimit[UCOUNT_RLIMIT_NPROC]} but {nproc.get(key, 0)} tasks"
            )
    expected_slab = {
        "task_struct": sum(1 for t in tasks if t is not k.init_task),
        "mm_struct": len(objects["mm"]),
        "files_cache": sum(1 for f in objects["files"].values() if f is not k.init_task.files),
        "sighand_cache": sum(1 for s in objects["sighand"].values() if s is not k.init_task.sighand),
        "nsproxy": sum(1 for n in objects["nsproxy"].values() if n is not k.init_nsproxy),
    }
    for cache, expected in expected_slab.items():
        actual = k.slab.get(cache, 0)
        if actual != expected:
            problems.append(f"slab {cache}: {actual} live objects, {expected} reachable")
    check_layers([cast("MmStruct", mm) for mm in objects["mm"].values()], problems)


def check_layers(mms: list[MmStruct], problems: list[str]) -> None:
    """Each page layer's users: the address spaces whose top it is, and the layers over it."""
    refs: Counter[int] = Counter()
    layers: dict[int, Layer] = {}
    for mm in mms:
        refs[id(mm.anon)] += 1
        layer: Layer | None = mm.anon
        while layer is not None and id(layer) not in layers:
            layers[id(layer)] = layer
            if layer.below is not None:
                refs[id(layer.below)] += 1
            layer = layer.below
    for key, layer in layers.items():
        if layer.users != refs[key]:
            problems.append(f"page layer {key:#x}: {layer.users} users, but {refs[key]} references found")
