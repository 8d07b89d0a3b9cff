"""procfs (fs/proc/base.c, array.c, proc_sysctl.c): files made from kernel state when read.

/proc shows the pid namespace it was mounted in. A file's text is made when it is opened
and read from that snapshot, as seq_file does; writes go to a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.cred import GLOBAL_ROOT_UID
from forklab.kernel.errors import KernelError
from forklab.kernel.fault import read_fail_nth, write_fail_nth
from forklab.kernel.fs.vfs import S_IFDIR, S_IFLNK, S_IFREG, Inode, InodeOps
from forklab.kernel.mm.mm import SUID_DUMP_USER
from forklab.kernel.mm.mmap import maps_text
from forklab.kernel.pid import PIDTYPE_PGID, PIDTYPE_PID, PIDTYPE_SID, PIDTYPE_TGID, find_task_by_pid_ns, pid_nr_ns
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.task import PF_KTHREAD, TASK_STATE_ARRAY, Task, task_state_index
from forklab.kernel.ucount import UCOUNT_RLIMIT_SIGPENDING
from forklab.kernel.user_namespace import (
    from_kgid_munged,
    from_kuid_munged,
    make_kuid,
    proc_setgroups_show,
    proc_setgroups_store,
    proc_uid_map_store,
)
from forklab.uapi import errno as E
from forklab.uapi import signal as S
from forklab.uapi.resource import RLIMIT_SIGPENDING

if TYPE_CHECKING:
    from forklab.kernel.fs.file import File
    from forklab.kernel.fs.namespace import Mount
    from forklab.kernel.machine import Machine
    from forklab.kernel.mm.mm import MmStruct
    from forklab.kernel.pid_namespace import PidNamespace
    from forklab.kernel.user_namespace import UserNamespace

Reader = Callable[["Machine", Task, "PidNamespace"], str]
Writer = Callable[["Machine", Task, str], None]
ModeOf = Callable[[Task], int]

MAX_NUMNODES = 1024  # CONFIG_NODES_SHIFT=10, as the reference machine's kernel is built


class SnapshotText:
    """A seq_file's buffer: the text made at open."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


class ProcFile(InodeOps):
    """A file whose text comes from ``show`` and whose writes go to ``store`` (about ``task``).

    ``mode`` given, the file's permission is that mode as sysctl_perm() tests it: the owner
    bits for global root, the other bits for everyone else, no capability overriding them.
    """

    def __init__(
        self,
        task: Task | None,
        show: Reader | None,
        store: Writer | None,
        mode: ModeOf | None = None,
        positionless: bool = False,
    ) -> None:
        # The inode names a struct pid, not a task: after an exec by a thread (de_thread) the
        # leader's pid, and so its files, belong to the thread that exec'd.
        self.pid = task.thread_pid if task is not None else None
        self.show = show
        self.store = store
        self.mode = mode
        # Its write handler neither checks nor moves the file position (comm, fail-nth).
        self.positionless = positionless

    def permission(self, current: Task, inode: Inode, mask: int) -> None:
        if self.mode is None:
            super().permission(current, inode, mask)
            return
        mode = self.mode(current)
        if current.cred.euid == 0:
            mode >>= 6
        elif current.cred.egid == 0:
            mode >>= 3
        if mask & ~mode & 7:
            raise KernelError(E.EACCES, f"sysctl {inode.name}: permission denied")

    def subject(self, current: Task) -> Task:
        from forklab.kernel.pid import PIDTYPE_PID, pid_task

        if self.pid is None:
            return current
        task = pid_task(self.pid, PIDTYPE_PID)
        if task is None:
            raise KernelError(E.ESRCH, "proc: the task is gone")
        return task

    def read(self, k: Machine, current: Task, file: File, count: int) -> bytes:
        """Like seq_file and sysctl reads: the text is made afresh by a read at offset 0."""
        if file.f_pos == 0 or not isinstance(file.private, SnapshotText):
            text = b""
            if self.show is not None:
                ns = file.mnt.proc_ns if file.mnt is not None and file.mnt.proc_ns is not None else k.init_pid_ns
                text = self.show(k, self.subject(current), ns).encode()
            file.private = SnapshotText(text)
        text = file.private.text
        data = text[file.f_pos : file.f_pos + count]
        file.f_pos += len(data)
        return bytes(data)

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        if self.store is None:
            raise KernelError(E.EIO, "proc: this file cannot be written")
        if file.f_pos != 0 and self.mode is None and not self.positionless:
            raise KernelError(E.EINVAL, "proc: writes must start at offset 0")
        self.store(k, self.subject(current), data.decode(errors="replace"))
        if not self.positionless:
            file.f_pos += len(data)
        return len(data)


class ProcLink(InodeOps):
    def __init__(self, target: Callable[[Machine, Task, Mount], str]) -> None:
        self.target = target

    def readlink(self, k: Machine, current: Task, mnt: Mount, inode: Inode) -> str:
        return self.target(k, current, mnt)


class ProcDir(InodeOps):
    """A directory whose entries are made on lookup by ``entries``."""

    def __init__(self, entries: Callable[[Machine, Mount], dict[str, Inode]]) -> None:
        self.entries = entries

    def lookup(self, k: Machine, mnt: Mount, inode: Inode, name: str) -> Inode | None:
        child = self.entries(k, mnt).get(name)
        if child is not None:
            child.parent = inode
        return child

    def names(self, k: Machine, mnt: Mount, inode: Inode) -> list[str]:
        return sorted(self.entries(k, mnt))


def proc_file(name: str, show: Reader | None, store: Writer | None = None, task: Task | None = None,
              mode: int = 0o444, uid: int = 0, sysctl_mode: ModeOf | None = None,
              positionless: bool = False) -> Inode:  # fmt: skip
    return Inode(name, S_IFREG | mode, ops=ProcFile(task, show, store, sysctl_mode, positionless), uid=uid)


def proc_dir(name: str, entries: Callable[[Machine, Mount], dict[str, Inode]]) -> Inode:
    return Inode(name, S_IFDIR | 0o555, ops=ProcDir(entries))


def proc_link(name: str, target: Callable[[Machine, Task, Mount], str]) -> Inode:
    return Inode(name, S_IFLNK | 0o777, ops=ProcLink(target))


def reader(k: Machine) -> Task:
    """Whoever is opening the file: procfs text depends on the reader's namespaces."""
    return k.current if k.current is not None else k.init_task


def proc_ns(mnt: Mount, k: Machine) -> PidNamespace:
    return mnt.proc_ns if mnt.proc_ns is not None else k.init_pid_ns


# ---- the root: pids, self, thread-self, sys --------------------------------------------------


def thread_self_target(k: Machine, current: Task, mnt: Mount) -> str:
    ns = proc_ns(mnt, k)
    return f"{pid_nr_ns(current.group_leader.thread_pid, ns)}/task/{pid_nr_ns(current.thread_pid, ns)}"


def root_entries(k: Machine, mnt: Mount) -> dict[str, Inode]:
    from forklab.kernel.fs.sysctl import sys_dir

    ns = proc_ns(mnt, k)
    entries: dict[str, Inode] = {
        "self": proc_link(
            "self", lambda k, current, mnt: str(pid_nr_ns(current.group_leader.thread_pid, proc_ns(mnt, k)))
        ),
        "thread-self": proc_link("thread-self", thread_self_target),
        "sys": sys_dir(),
    }
    return _with_pids(entries, k, ns)


class ProcRoot(ProcDir):
    """/proc itself: any visible pid can be looked up, even a thread's (it is just not listed)."""

    def lookup(self, k: Machine, mnt: Mount, inode: Inode, name: str) -> Inode | None:
        if name.isdigit():
            task = find_task_by_pid_ns(int(name), proc_ns(mnt, k))
            if task is None:
                return None
            child = pid_dir(name, task)
            child.parent = inode
            return child
        return super().lookup(k, mnt, inode, name)


def _with_pids(entries: dict[str, Inode], k: Machine, ns: PidNamespace) -> dict[str, Inode]:
    for nr in sorted(ns.idr):
        task = find_task_by_pid_ns(nr, ns)
        if task is not None and task.exit_signal >= 0:
            entries[str(nr)] = pid_dir(str(nr), task)
    return entries


def make_proc_root() -> Inode:
    return Inode("proc", S_IFDIR | 0o555, ops=ProcRoot(root_entries))


# ---- /proc/<pid> and /proc/<pid>/task/<tid> --------------------------------------------------


def task_dump_owner(task: Task) -> int:
    """Who owns a task's /proc files: its euid, but root (of the namespace its memory belongs to)
    when it is not dumpable or has no memory (a zombie, a kernel thread)."""
    mm = task.mm
    if task.flags & PF_KTHREAD or mm is None:
        return GLOBAL_ROOT_UID
    if mm.dumpable == SUID_DUMP_USER:
        return task.cred.euid
    root = make_kuid(mm.user_ns or task.cred.user_ns, 0)
    return root if root != -1 else GLOBAL_ROOT_UID


def pid_dir(name: str, task: Task) -> Inode:
    uid = task_dump_owner(task)

    def entries(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {
            "status": proc_file("status", proc_pid_status, task=task),
            "stat": proc_file("stat", proc_pid_stat, task=task),
            "comm": comm_file(task),
            "maps": proc_file("maps", proc_pid_maps, task=task),
            "uid_map": proc_file("uid_map", lambda k, t, ns: id_map_text(reader(k), t, gid=False),
                                 proc_uid_map_store(gid=False), task, 0o644, uid),
            "gid_map": proc_file("gid_map", lambda k, t, ns: id_map_text(reader(k), t, gid=True),
                                 proc_uid_map_store(gid=True), task, 0o644, uid),
            "setgroups": proc_file("setgroups", proc_setgroups_show, proc_setgroups_store, task, 0o644, uid),
            "ns": proc_dir("ns", lambda k, mnt: ns_links(task)),
            "task": proc_dir("task", lambda k, mnt: task_entries(k, mnt, task)),
        }  # fmt: skip

    return proc_dir(name, entries)


def comm_file(task: Task) -> Inode:
    """/proc/<pid>/comm: readable by all; the task's own group may write a new name. The first
    15 bytes written become the name as they are, a trailing newline included."""

    def store(k: Machine, t: Task, text: str) -> None:
        current = reader(k)
        if current.signal is not t.signal:
            raise KernelError(E.EINVAL, "comm: only the task's own thread group may rename it")
        t.comm = text[:15]

    return proc_file(
        "comm", lambda k, t, ns: t.comm + "\n", store, task, 0o644, task_dump_owner(task), positionless=True
    )


def task_entries(k: Machine, mnt: Mount, leader: Task) -> dict[str, Inode]:
    ns = proc_ns(mnt, k)
    result = {}
    for t in leader.signal.thread_head:
        nr = pid_nr_ns(t.thread_pid, ns)
        if nr:
            result[str(nr)] = tid_dir(str(nr), t)
    return result


def tid_dir(name: str, task: Task) -> Inode:
    def entries(k: Machine, mnt: Mount) -> dict[str, Inode]:
        return {
            "status": proc_file("status", proc_pid_status, task=task),
            "stat": proc_file("stat", proc_pid_stat, task=task),
            "comm": comm_file(task),
            "children": proc_file("children", proc_task_children, task=task),
            "fail-nth": proc_file("fail-nth", lambda k, t, ns: read_fail_nth(t),
                                  lambda k, t, text: write_fail_nth(t, text), task, 0o644, task_dump_owner(task),
                                  positionless=True),
        }  # fmt: skip

    return proc_dir(name, entries)


NS_LINKS = (
    ("cgroup", "cgroup_ns"),
    ("ipc", "ipc_ns"),
    ("mnt", "mnt_ns"),
    ("net", "net_ns"),
    ("pid", None),
    ("pid_for_children", "pid_ns_for_children"),
    ("time", "time_ns"),
    ("time_for_children", "time_ns_for_children"),
    ("user", None),
    ("uts", "uts_ns"),
)


def ns_inum(task: Task, name: str, attr: str | None) -> int:
    if name == "pid":
        return task_active_pid_ns(task).inum
    if name == "user":
        return task.cred.user_ns.inum
    nsproxy = task.nsproxy
    if nsproxy is None:
        raise KernelError(E.ENOENT, "proc: the task has exited its namespaces")
    assert attr is not None
    return int(getattr(nsproxy, attr).inum)


def ns_links(task: Task) -> dict[str, Inode]:
    return {name: ns_link(task, name, attr) for name, attr in NS_LINKS}


def ns_link(task: Task, name: str, attr: str | None) -> Inode:
    """/proc/<pid>/ns/<name> -> "<kind>:[<inode number>]"."""
    kind = name.replace("_for_children", "")

    def target(k: Machine, current: Task, mnt: Mount) -> str:
        return f"{kind}:[{ns_inum(task, name, attr)}]"

    return proc_link(name, target)


def id_map_text(reader: Task, task: Task, gid: bool) -> str:
    """uid_m_show(): the lower ids as the reader's namespace sees them (its parent's, if the
    reader is inside the namespace itself); an id it cannot see prints as 4294967295."""
    ns = task.cred.user_ns
    lower_ns = reader.cred.user_ns
    if lower_ns is ns and ns.parent is not None:
        lower_ns = ns.parent
    lower_map = lower_ns.gid_map if gid else lower_ns.uid_map
    lines = []
    for first, lower, count in (ns.gid_map if gid else ns.uid_map).extents:
        shown = lower_map.up(lower) & 0xFFFFFFFF
        lines.append(f"{first:>10} {shown:>10} {count:>10}\n")
    return "".join(lines)


# ---- the text of status, stat, maps, children -----------------------------------------------


def _hex64(value: int) -> str:
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


def cpumask_text(bits: int, nbits: int) -> str:
    """%*pb: 32-bit groups in hex, high group first, separated by commas."""
    groups = max(1, (nbits + 31) // 32)
    words = [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(groups)]
    first = f"{words[-1]:x}" if groups == 1 else f"{words[-1]:08x}"
    return ",".join([first] + [f"{w:08x}" for w in reversed(words[:-1])])


def proc_pid_status(k: Machine, task: Task, ns: PidNamespace, reader_ns: UserNamespace | None = None) -> str:
    """The text of /proc/<pid>/status; pids as ``ns`` shows them, ids as ``reader_ns`` (the
    reader's own user namespace by default) maps them."""
    reader_ns = reader_ns or reader(k).cred.user_ns
    cred = task.cred
    pid = task.thread_pid
    lines = [f"Name:\t{task.comm}"]
    if task.fs is not None:
        lines.append(f"Umask:\t{task.fs.umask:04o}")
    lines.append(f"State:\t{TASK_STATE_ARRAY[task_state_index(task)]}")
    parent = task.real_parent
    ppid = pid_nr_ns(parent.group_leader.thread_pid, ns) if parent is not None and task.thread_pid is not None else 0
    tracer = task.parent if task.ptrace else None
    tracer_pid = pid_nr_ns(tracer.thread_pid, ns) if tracer is not None else 0
    lines += [
        f"Tgid:\t{pid_nr_ns(task.group_leader.thread_pid, ns)}",
        "Ngid:\t0",
        f"Pid:\t{pid_nr_ns(pid, ns)}",
        f"PPid:\t{ppid}",
        f"TracerPid:\t{tracer_pid}",
        "Uid:\t" + "\t".join(str(from_kuid_munged(reader_ns, u)) for u in (cred.uid, cred.euid, cred.suid, cred.fsuid)),
        "Gid:\t" + "\t".join(str(from_kgid_munged(reader_ns, g)) for g in (cred.gid, cred.egid, cred.sgid, cred.fsgid)),
        f"FDSize:\t{task.files.max_fds if task.files is not None else 0}",
        "Groups:\t" + " ".join(str(from_kgid_munged(reader_ns, g)) for g in cred.group_info) + " ",
    ]
    if pid is not None:
        levels = range(ns.level, pid.level + 1)
        numbers = [pid.numbers[level][1] for level in levels]
        for label, kind in (
            ("NStgid", PIDTYPE_TGID),
            ("NSpid", PIDTYPE_PID),
            ("NSpgid", PIDTYPE_PGID),
            ("NSsid", PIDTYPE_SID),
        ):
            lines.append(f"{label}:" + "".join(f"\t{task_pid_number(task, kind, n)}" for n in numbers))
    lines.append(f"Kthread:\t{1 if task.flags & PF_KTHREAD else 0}")
    mm = task.mm
    if mm is not None:
        rss = mm.rss_anon + mm.rss_file
        exe = mm.exec_vm
        stack = mm.stack_vm
        lines += [f"{name}:\t{value * 4:8d} kB" for name, value in (
            ("VmPeak", mm.hiwater_vm), ("VmSize", mm.total_vm), ("VmLck", 0), ("VmPin", 0),
            ("VmHWM", max(mm.hiwater_rss, rss)), ("VmRSS", rss), ("RssAnon", mm.rss_anon),
            ("RssFile", mm.rss_file), ("RssShmem", 0), ("VmData", mm.data_vm()), ("VmStk", stack),
            ("VmExe", exe), ("VmLib", 0), ("VmPTE", page_table_pages(mm)), ("VmSwap", 0),
        )]  # fmt: skip
        lines += ["HugetlbPages:\t       0 kB", "CoreDumping:\t0", "THP_enabled:\t1", "untag_mask:\t0xffffffffffffffff"]
    signal = task.signal
    sighand = task.sighand
    ignored = caught = 0
    if sighand is not None:
        for index, (handler, _, _) in enumerate(sighand.action):
            if handler == S.SIG_IGN:
                ignored |= 1 << index
            elif handler != S.SIG_DFL:
                caught |= 1 << index
    queued = task.real_cred.ucounts.rlimit[UCOUNT_RLIMIT_SIGPENDING]
    lines += [
        f"Threads:\t{signal.nr_threads}",
        f"SigQ:\t{queued}/{signal.rlim[RLIMIT_SIGPENDING][0]}",
        f"SigPnd:\t{_hex64(task.pending.signal)}",
        f"ShdPnd:\t{_hex64(signal.shared_pending.signal)}",
        f"SigBlk:\t{_hex64(task.blocked)}",
        f"SigIgn:\t{_hex64(ignored)}",
        f"SigCgt:\t{_hex64(caught)}",
        f"CapInh:\t{_hex64(cred.cap_inheritable)}",
        f"CapPrm:\t{_hex64(cred.cap_permitted)}",
        f"CapEff:\t{_hex64(cred.cap_effective)}",
        f"CapBnd:\t{_hex64(cred.cap_bset)}",
        f"CapAmb:\t{_hex64(cred.cap_ambient)}",
        "NoNewPrivs:\t0",
        "Seccomp:\t0",
        "Seccomp_filters:\t0",
        f"Cpus_allowed:\t{cpumask_text((1 << k.nr_cpu_ids) - 1, k.nr_cpu_ids)}",
        f"Cpus_allowed_list:\t{'0' if k.nr_cpu_ids == 1 else f'0-{k.nr_cpu_ids - 1}'}",
        f"Mems_allowed:\t{cpumask_text(1, MAX_NUMNODES)}",
        "Mems_allowed_list:\t0",
        "voluntary_ctxt_switches:\t0",
        "nonvoluntary_ctxt_switches:\t0",
    ]
    return "\n".join(lines) + "\n"


def task_pid_number(task: Task, kind: int, ns: PidNamespace) -> int:
    if kind == PIDTYPE_PID:
        return pid_nr_ns(task.thread_pid, ns)
    if kind == PIDTYPE_TGID:
        return pid_nr_ns(task.group_leader.thread_pid, ns)
    return pid_nr_ns(task.signal.pids[kind], ns)


def page_table_pages(mm: MmStruct) -> int:
    """Page-table pages for the mapped ranges: one PTE page per 2 MiB a VMA covers."""
    regions: set[int] = set()
    for vma in mm.vmas:
        regions.update(range(vma.vm_start >> 21, ((vma.vm_end - 1) >> 21) + 1))
    return len(regions)


def proc_pid_stat(k: Machine, task: Task, ns: PidNamespace) -> str:
    """The first fields of /proc/<pid>/stat: pid (comm) state ppid pgrp session."""
    parent = task.real_parent
    ppid = pid_nr_ns(parent.group_leader.thread_pid, ns) if parent is not None else 0
    state = TASK_STATE_ARRAY[task_state_index(task)][0]
    fields = [
        str(pid_nr_ns(task.thread_pid, ns)),
        f"({task.comm})",
        state,
        str(ppid),
        str(task_pid_number(task, PIDTYPE_PGID, ns)),
        str(task_pid_number(task, PIDTYPE_SID, ns)),
    ]
    return " ".join(fields) + "\n"


def proc_pid_maps(k: Machine, task: Task, ns: PidNamespace) -> str:
    return maps_text(task.mm) if task.mm is not None else ""


def proc_task_children(k: Machine, task: Task, ns: PidNamespace) -> str:
    """/proc/<pid>/task/<tid>/children: this thread's children, space separated."""
    return "".join(f"{pid_nr_ns(child.thread_pid, ns)} " for child in task.children)
