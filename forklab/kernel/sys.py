"""kernel/sys.c (and kernel/groups.c): who a task is, its credentials, limits, nice value, name and host."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.cred import (
    GLOBAL_ROOT_UID,
    capable,
    commit_creds,
    ns_capable,
    prepare_creds,
    set_cred_ucounts,
)
from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.invariants import all_tasks
from forklab.kernel.pid import (
    PIDTYPE_PGID,
    PIDTYPE_PID,
    PIDTYPE_SID,
    PIDTYPE_TGID,
    Pid,
    change_pid,
    find_pid_ns,
    find_task_by_pid_ns,
    free_pid,
    is_child_reaper,
    pid_nr_ns,
    pid_task,
    pid_tasks,
    task_pid_nr_ns,
    task_pid_vnr,
)
from forklab.kernel.pid_namespace import task_active_pid_ns
from forklab.kernel.sched.core import MAX_NICE, MIN_NICE, task_nice
from forklab.kernel.sched.syscalls import can_nice, cap_safe_nice, nice_to_rlimit, set_user_nice
from forklab.kernel.signal import threads_from
from forklab.kernel.task import PF_FORKNOEXEC, PF_NPROC_EXCEEDED, TASK_COMM_LEN, Task
from forklab.kernel.ucount import UCOUNT_RLIMIT_NPROC, is_rlimit_overlimit
from forklab.kernel.user_namespace import (
    from_kgid_munged,
    from_kuid_munged,
    make_kgid,
    make_kuid,
    userns_may_setgroups,
)
from forklab.kernel.utsname import __NEW_UTS_LEN
from forklab.uapi import errno as E
from forklab.uapi import prctl as P
from forklab.uapi.capability import CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN, CAP_SYS_NICE, CAP_SYS_RESOURCE
from forklab.uapi.resource import (
    PRIO_PGRP,
    PRIO_PROCESS,
    PRIO_USER,
    RLIM_INFINITY,
    RLIM_NLIMITS,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
)
from forklab.uapi.signal import valid_signal

if TYPE_CHECKING:
    from forklab.kernel.cred import Cred
    from forklab.kernel.machine import Machine

NGROUPS_MAX = 65536
NR_OPEN = 1024 * 1024
ID_UNCHANGED = 0xFFFFFFFF  # (uid_t) -1
_STK_LIM = 8 * 1024 * 1024
MLOCK_LIMIT = 8 * 1024 * 1024
MQ_BYTES_MAX = 819200


def init_rlimits(nproc: int) -> tuple[tuple[int, int], ...]:
    """INIT_RLIMITS, with RLIMIT_NPROC and RLIMIT_SIGPENDING as fork_init() sets them."""
    inf = (RLIM_INFINITY, RLIM_INFINITY)
    return (
        inf,  # CPU
        inf,  # FSIZE
        inf,  # DATA
        (_STK_LIM, RLIM_INFINITY),  # STACK
        (0, RLIM_INFINITY),  # CORE
        inf,  # RSS
        (nproc, nproc),  # NPROC
        (1024, 4096),  # NOFILE
        (MLOCK_LIMIT, MLOCK_LIMIT),  # MEMLOCK
        inf,  # AS
        inf,  # LOCKS
        (nproc, nproc),  # SIGPENDING
        (MQ_BYTES_MAX, MQ_BYTES_MAX),  # MSGQUEUE
        (0, 0),  # NICE
        (0, 0),  # RTPRIO
        inf,  # RTTIME
    )


# ---- identity -------------------------------------------------------------------------------


def sys_getpid(k: Machine, current: Task) -> int:
    return task_pid_nr_ns(current, PIDTYPE_TGID, task_active_pid_ns(current))


def sys_gettid(k: Machine, current: Task) -> int:
    return task_pid_nr_ns(current, PIDTYPE_PID, task_active_pid_ns(current))


def sys_getppid(k: Machine, current: Task) -> int:
    """The real parent's tgid as the caller sees it: 0 if the parent is outside its pid namespace."""
    parent = current.real_parent
    if parent is None:
        return 0
    return pid_nr_ns(parent.group_leader.thread_pid, task_active_pid_ns(current))


def sys_getuid(k: Machine, current: Task) -> int:
    return from_kuid_munged(current.cred.user_ns, current.cred.uid)


def sys_geteuid(k: Machine, current: Task) -> int:
    return from_kuid_munged(current.cred.user_ns, current.cred.euid)


def sys_getgid(k: Machine, current: Task) -> int:
    return from_kgid_munged(current.cred.user_ns, current.cred.gid)


def sys_getegid(k: Machine, current: Task) -> int:
    return from_kgid_munged(current.cred.user_ns, current.cred.egid)


def getresuid(k: Machine, current: Task) -> tuple[int, int, int]:
    cred = current.cred
    ns = cred.user_ns
    return from_kuid_munged(ns, cred.uid), from_kuid_munged(ns, cred.euid), from_kuid_munged(ns, cred.suid)


def getresgid(k: Machine, current: Task) -> tuple[int, int, int]:
    cred = current.cred
    ns = cred.user_ns
    return from_kgid_munged(ns, cred.gid), from_kgid_munged(ns, cred.egid), from_kgid_munged(ns, cred.sgid)


# ---- set*id ---------------------------------------------------------------------------------


def _new_ids(to_kernel: Callable[[int], int], requested: tuple[int, int, int]) -> tuple[int | None, ...]:
    """Kernel ids for the requested ones (None for -1); EINVAL for an id the namespace cannot map."""
    result: list[int | None] = []
    for value in requested:
        value &= 0xFFFFFFFF
        if value == ID_UNCHANGED:
            result.append(None)
            continue
        kid = to_kernel(value)
        if kid == -1:
            raise KernelError(E.EINVAL, f"set*id: id {value} has no mapping in the caller's user namespace")
        result.append(kid)
    return tuple(result)


def sys_setresuid(k: Machine, current: Task, ruid: int, euid: int, suid: int) -> None:
    old = current.cred
    ns = old.user_ns
    kruid, keuid, ksuid = _new_ids(lambda uid: make_kuid(ns, uid), (ruid, euid, suid))
    if (
        (kruid is None or kruid == old.uid)
        and (keuid is None or (keuid == old.euid and keuid == old.fsuid))
        and (ksuid is None or ksuid == old.suid)
    ):
        return
    known = (old.uid, old.euid, old.suid)
    if any(new is not None and new not in known for new in (kruid, keuid, ksuid)) and not ns_capable(
        current, ns, CAP_SETUID
    ):
        raise KernelError(E.EPERM, "setresuid: changing to a new uid needs CAP_SETUID")
    new = prepare_creds(k, current)
    if kruid is not None:
        new.uid = kruid
    if keuid is not None:
        new.euid = keuid
    if ksuid is not None:
        new.suid = ksuid
    new.fsuid = new.euid
    cap_emulate_setxuid(new, old)
    set_cred_ucounts(k, new)
    flag_nproc_exceeded(current, new)
    commit_creds(k, current, new)


def cap_emulate_setxuid(new: Cred, old: Cred) -> None:
    """Leaving root (of the cred's namespace) drops capabilities; becoming euid root regains them."""
    root = make_kuid(old.user_ns, 0)
    was_root = root in (old.uid, old.euid, old.suid)
    if was_root and root not in (new.uid, new.euid, new.suid):
        new.cap_permitted = new.cap_effective = new.cap_ambient = 0
    if old.euid == root and new.euid != root:
        new.cap_effective = 0
    if old.euid != root and new.euid == root:
        new.cap_effective = new.cap_permitted


def flag_nproc_exceeded(current: Task, new: Cred) -> None:
    """A set*uid over RLIMIT_NPROC does not fail: the next execve does (PF_NPROC_EXCEEDED)."""
    if (
        is_rlimit_overlimit(new.ucounts, UCOUNT_RLIMIT_NPROC, current.signal.rlim[RLIMIT_NPROC][0])
        and new.uid != GLOBAL_ROOT_UID
    ):
        current.flags |= PF_NPROC_EXCEEDED
    else:
        current.flags &= ~PF_NPROC_EXCEEDED


def sys_setresgid(k: Machine, current: Task, rgid: int, egid: int, sgid: int) -> None:
    old = current.cred
    ns = old.user_ns
    krgid, kegid, ksgid = _new_ids(lambda gid: make_kgid(ns, gid), (rgid, egid, sgid))
    if (
        (krgid is None or krgid == old.gid)
        and (kegid is None or (kegid == old.egid and kegid == old.fsgid))
        and (ksgid is None or ksgid == old.sgid)
    ):
        return
    known = (old.gid, old.egid, old.sgid)
    if any(new is not None and new not in known for new in (krgid, kegid, ksgid)) and not ns_capable(
        current, ns, CAP_SETGID
    ):
        raise KernelError(E.EPERM, "setresgid: changing to a new gid needs CAP_SETGID")
    new = prepare_creds(k, current)
    if krgid is not None:
        new.gid = krgid
    if kegid is not None:
        new.egid = kegid
    if ksgid is not None:
        new.sgid = ksgid
    new.fsgid = new.egid
    commit_creds(k, current, new)


def sys_setgroups(k: Machine, current: Task, groups: list[int]) -> None:
    if len(groups) > NGROUPS_MAX:
        raise KernelError(E.EINVAL, "setgroups: more than NGROUPS_MAX groups")
    ns = current.cred.user_ns
    if not (ns_capable(current, ns, CAP_SETGID) and userns_may_setgroups(ns)):
        raise KernelError(
            E.EPERM, "setgroups: needs CAP_SETGID and, in a user namespace, a gid_map with setgroups allowed"
        )
    kgids = []
    for gid in groups:
        kgid = make_kgid(ns, gid & 0xFFFFFFFF)
        if kgid == -1:
            raise KernelError(E.EINVAL, f"setgroups: gid {gid} has no mapping")
        kgids.append(kgid)
    new = prepare_creds(k, current)
    new.group_info = tuple(sorted(kgids))
    commit_creds(k, current, new)


# ---- rlimits --------------------------------------------------------------------------------


def do_prlimit(k: Machine, current: Task, tsk: Task, resource: int, new: tuple[int, int] | None) -> tuple[int, int]:
    """Read and optionally set one limit; raising a hard limit needs CAP_SYS_RESOURCE (init namespace)."""
    if not 0 <= resource < RLIM_NLIMITS:
        raise KernelError(E.EINVAL, f"prlimit: resource {resource} does not exist")
    if new is not None:
        soft, hard = new
        if soft > hard:
            raise KernelError(E.EINVAL, "setrlimit: the soft limit is above the hard limit")
        if resource == RLIMIT_NOFILE and hard > NR_OPEN:
            raise KernelError(E.EPERM, "setrlimit: RLIMIT_NOFILE above nr_open")
    rlim = tsk.signal.rlim
    old = rlim[resource]
    if new is not None:
        if new[1] > old[1] and not capable(k, current, CAP_SYS_RESOURCE):
            raise KernelError(E.EPERM, "setrlimit: raising a hard limit needs CAP_SYS_RESOURCE")
        updated = list(rlim)
        updated[resource] = new
        tsk.signal.rlim = tuple(updated)
    return old


# ---- uts ------------------------------------------------------------------------------------


def sys_uname(k: Machine, current: Task) -> tuple[str, ...]:
    assert current.nsproxy is not None
    return current.nsproxy.uts_ns.name


def sys_sethostname(k: Machine, current: Task, name: str) -> None:
    assert current.nsproxy is not None
    uts = current.nsproxy.uts_ns
    if not ns_capable(current, uts.user_ns, CAP_SYS_ADMIN):
        raise KernelError(E.EPERM, "sethostname: needs CAP_SYS_ADMIN over the uts namespace")
    encoded = name.encode()
    if len(encoded) > __NEW_UTS_LEN:
        raise KernelError(E.EINVAL, "sethostname: longer than 64 bytes")
    fields = list(uts.name)
    fields[1] = name
    uts.name = tuple(fields)


# ---- prctl ----------------------------------------------------------------------------------


def sys_prctl(k: Machine, current: Task, option: int, arg2: int | str) -> int | str:
    """The prctl options that bear on process creation and exit. PR_SET_NAME takes the name
    itself; PR_GET_* return the value rather than writing it through a pointer."""
    signal = current.signal
    if option == P.PR_SET_PDEATHSIG:
        if not isinstance(arg2, int) or not valid_signal(arg2):
            raise KernelError(E.EINVAL, f"prctl: PR_SET_PDEATHSIG with invalid signal {arg2}")
        current.pdeath_signal = arg2
        return 0
    if option == P.PR_GET_PDEATHSIG:
        return current.pdeath_signal
    if option == P.PR_SET_CHILD_SUBREAPER:
        signal.is_child_subreaper = bool(arg2)
        if arg2:
            propagate_has_child_subreaper(current)
        return 0
    if option == P.PR_GET_CHILD_SUBREAPER:
        return int(signal.is_child_subreaper)
    if option == P.PR_SET_NAME:
        current.comm = str(arg2)[: TASK_COMM_LEN - 1]
        return 0
    if option == P.PR_GET_NAME:
        return current.comm
    if option == P.PR_GET_DUMPABLE:
        return current.mm.dumpable if current.mm is not None else 0
    if option == P.PR_SET_DUMPABLE:
        if arg2 not in (0, 1):  # SUID_DUMP_DISABLE or SUID_DUMP_USER; root-only dumping is not settable
            raise KernelError(E.EINVAL, f"prctl: PR_SET_DUMPABLE takes 0 or 1, not {arg2}")
        if current.mm is not None:
            current.mm.dumpable = int(arg2)
        return 0
    if option in (P.PR_SET_NO_NEW_PRIVS, P.PR_GET_NO_NEW_PRIVS):
        raise NotModelled(f"prctl option {option}")
    raise KernelError(E.EINVAL, f"prctl: unknown option {option}")


def propagate_has_child_subreaper(current: Task) -> None:
    """Every process below a new subreaper learns it has one, except below a pid namespace's init."""
    stack = [current]
    while stack:
        task = stack.pop()
        for thread in task.signal.thread_head:
            for child in thread.children:
                signal = child.signal
                if signal.has_child_subreaper or (child.thread_pid is not None and is_child_reaper(child.thread_pid)):
                    continue
                signal.has_child_subreaper = True
                stack.append(child)


# ---- process groups and sessions ------------------------------------------------------------------


def ksys_setsid(k: Machine, current: Task) -> int:
    """A new session and process group, both named by the caller's tgid; EPERM if one exists."""
    leader = current.group_leader
    sid = leader.thread_pid
    assert sid is not None
    if leader.signal.leader:
        raise KernelError(E.EPERM, "setsid: the caller already leads a session")
    if pid_task(sid, PIDTYPE_PGID) is not None:
        raise KernelError(E.EPERM, "setsid: a process group already has the caller's id")
    leader.signal.leader = True
    freed: list[Pid] = []
    for kind in (PIDTYPE_SID, PIDTYPE_PGID):
        if leader.signal.pids[kind] is not sid:
            change_pid(leader, kind, sid, freed)
    for pid in freed:
        free_pid(k, pid)
    return task_pid_vnr(leader, PIDTYPE_PID, current)


def ksys_setpgid(k: Machine, current: Task, pid: int, pgid: int) -> None:
    """Move a process (the caller or a child not yet exec'd) into a process group of its session."""
    leader = current.group_leader
    ns = task_active_pid_ns(current)
    if not pid:
        pid = task_pid_nr_ns(leader, PIDTYPE_PID, ns)
    if not pgid:
        pgid = pid
    if pgid < 0:
        raise KernelError(E.EINVAL, "setpgid: negative process group")
    p = find_task_by_pid_ns(pid, ns)
    if p is None:
        raise KernelError(E.ESRCH, f"setpgid: no process {pid}")
    if p.exit_signal < 0:
        raise KernelError(E.EINVAL, "setpgid: a thread is not a process")
    session = leader.signal.pids[PIDTYPE_SID]
    parent = p.real_parent
    if parent is not None and parent.signal is leader.signal:
        if p.signal.pids[PIDTYPE_SID] is not session:
            raise KernelError(E.EPERM, "setpgid: the child is in another session")
        if not p.flags & PF_FORKNOEXEC:
            raise KernelError(E.EACCES, "setpgid: the child has already exec'd")
    elif p is not leader:
        raise KernelError(E.ESRCH, "setpgid: neither the caller nor one of its children")
    if p.signal.leader:
        raise KernelError(E.EPERM, "setpgid: a session leader cannot change its group")
    group = p.thread_pid
    if pgid != pid:
        group = find_pid_ns(pgid, ns)
        member = pid_task(group, PIDTYPE_PGID)
        if member is None or member.signal.pids[PIDTYPE_SID] is not session:
            raise KernelError(E.EPERM, f"setpgid: no process group {pgid} in the caller's session")
    if p.signal.pids[PIDTYPE_PGID] is not group:
        freed: list[Pid] = []
        change_pid(p, PIDTYPE_PGID, group, freed)
        for stale in freed:
            free_pid(k, stale)


def getpgid_or_sid(k: Machine, current: Task, pid: int, kind: int) -> int:
    """getpgid(pid) and getsid(pid): 0 for a group outside the caller's pid namespace."""
    ns = task_active_pid_ns(current)
    target = current if not pid else find_task_by_pid_ns(pid, ns)
    if target is None:
        raise KernelError(E.ESRCH, f"getpgid/getsid: no process {pid}")
    return pid_nr_ns(target.signal.pids[kind], ns)


# ---- nice values ------------------------------------------------------------------------------------


def prio_targets(k: Machine, current: Task, which: int, who: int) -> list[Task]:
    """The threads setpriority/getpriority act on: one thread (PRIO_PROCESS), every thread of a
    process group (PRIO_PGRP) or of a real uid (PRIO_USER); ``who`` 0 is the caller's own."""
    ns = task_active_pid_ns(current)
    if which == PRIO_PROCESS:
        p = current if not who else find_task_by_pid_ns(who, ns)
        return [p] if p is not None else []
    if which == PRIO_PGRP:
        pgrp = find_pid_ns(who, ns) if who else current.signal.pids[PIDTYPE_PGID]
        leaders = pid_tasks(pgrp, PIDTYPE_PGID) if pgrp is not None else []
        return [t for leader in leaders for t in threads_from(leader)]
    cred = current.cred
    uid = make_kuid(cred.user_ns, who & 0xFFFFFFFF) if who else cred.uid
    return [p for p in all_tasks(k) if p.pid and p.real_cred.uid == uid and pid_nr_ns(p.thread_pid, ns)]


def check_prio_which(which: int, call: str) -> None:
    if not PRIO_PROCESS <= which <= PRIO_USER:
        raise KernelError(E.EINVAL, f"{call}: which must be PRIO_PROCESS, PRIO_PGRP or PRIO_USER, not {which}")


def set_one_prio_perm(current: Task, p: Task) -> bool:
    """The caller's euid is the target's uid or euid, or it has CAP_SYS_NICE over the target."""
    cred, pcred = current.cred, p.real_cred
    return cred.euid in (pcred.uid, pcred.euid) or ns_capable(current, pcred.user_ns, CAP_SYS_NICE)


def set_one_prio(k: Machine, current: Task, p: Task, niceval: int) -> KernelError | None:
    """Set one thread's nice value; the refusal, if there is one."""
    if not set_one_prio_perm(current, p):
        return KernelError(E.EPERM, "setpriority: another user's task needs CAP_SYS_NICE over it")
    if niceval < task_nice(p) and not can_nice(k, current, p, niceval):
        return KernelError(E.EACCES, "setpriority: a lower nice value needs RLIMIT_NICE or CAP_SYS_NICE")
    try:
        cap_safe_nice(current, p, "setpriority")
    except KernelError as err:
        return err
    set_user_nice(k, p, niceval)
    return None


def sys_setpriority(k: Machine, current: Task, which: int, who: int, niceval: int) -> None:
    """Every target that may be changed is; the call fails with the last refusal if there was
    one (even when others succeeded), with ESRCH if nothing matched."""
    check_prio_which(which, "setpriority")
    niceval = min(max(niceval, MIN_NICE), MAX_NICE)
    error: KernelError | None = KernelError(E.ESRCH, "setpriority: no task matches")
    for p in prio_targets(k, current, which, who):
        refusal = set_one_prio(k, current, p, niceval)
        if refusal is not None:
            error = refusal
        elif error is not None and error.errno == E.ESRCH:
            error = None
    if error is not None:
        raise error


def sys_getpriority(k: Machine, current: Task, which: int, who: int) -> int:
    """The highest priority among the targets, as 20 - nice (1..40) so that it is never negative."""
    check_prio_which(which, "getpriority")
    targets = prio_targets(k, current, which, who)
    if not targets:
        raise KernelError(E.ESRCH, "getpriority: no task matches")
    return max(nice_to_rlimit(task_nice(p)) for p in targets)
