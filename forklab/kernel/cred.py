"""kernel/cred.c and security/commoncap.c: credentials and capability checks.

Credentials are copied, changed and committed, never edited in place while shared. Ids are
kernel (global) ids; ``from_kuid`` turns them into what a namespace shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.kernel.task import PF_SUPERPRIV
from forklab.kernel.ucount import (
    UCOUNT_RLIMIT_NPROC,
    Ucounts,
    alloc_ucounts,
    dec_rlimit_ucounts,
    get_ucounts,
    inc_rlimit_ucounts,
    is_rlimit_overlimit,
    put_ucounts,
)
from forklab.kernel.user_namespace import UserNamespace, create_user_ns, get_user_ns, put_user_ns
from forklab.uapi.capability import CAP_EMPTY_SET, CAP_FULL_SET, CAP_SYS_ADMIN, CAP_SYS_RESOURCE
from forklab.uapi.resource import RLIMIT_NPROC
from forklab.uapi.sched import CLONE_NEWUSER, CLONE_THREAD

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

GLOBAL_ROOT_UID = 0


class Cred:
    """struct cred."""

    __slots__ = (
        "cap_ambient",
        "cap_bset",
        "cap_effective",
        "cap_inheritable",
        "cap_permitted",
        "egid",
        "euid",
        "fsgid",
        "fsuid",
        "gid",
        "group_info",
        "securebits",
        "sgid",
        "suid",
        "ucounts",
        "uid",
        "usage",
        "user_ns",
    )

    cap_ambient: int
    cap_bset: int
    cap_effective: int
    cap_inheritable: int
    cap_permitted: int
    egid: int
    euid: int
    fsgid: int
    fsuid: int
    gid: int
    group_info: tuple[int, ...]
    securebits: int
    sgid: int
    suid: int
    ucounts: Ucounts
    uid: int
    usage: int
    user_ns: UserNamespace

    def copy(self) -> Cred:
        new = Cred.__new__(Cred)
        new.uid, new.euid, new.suid, new.fsuid = self.uid, self.euid, self.suid, self.fsuid
        new.gid, new.egid, new.sgid, new.fsgid = self.gid, self.egid, self.sgid, self.fsgid
        new.cap_inheritable, new.cap_permitted = self.cap_inheritable, self.cap_permitted
        new.cap_effective, new.cap_bset, new.cap_ambient = self.cap_effective, self.cap_bset, self.cap_ambient
        new.securebits, new.group_info = self.securebits, self.group_info
        new.user_ns, new.ucounts, new.usage = self.user_ns, self.ucounts, self.usage
        return new


def make_init_cred(k: Machine) -> Cred:
    cred = Cred.__new__(Cred)
    cred.uid = cred.euid = cred.suid = cred.fsuid = 0
    cred.gid = cred.egid = cred.sgid = cred.fsgid = 0
    cred.securebits = 0
    cred.cap_inheritable = CAP_EMPTY_SET
    cred.cap_permitted = cred.cap_effective = cred.cap_bset = CAP_FULL_SET
    cred.cap_ambient = CAP_EMPTY_SET
    cred.group_info = ()
    cred.user_ns = get_user_ns(k.init_user_ns)
    cred.ucounts = alloc_ucounts(k, k.init_user_ns, 0)
    cred.usage = 1
    k.kmem_cache_alloc(None, "cred_jar")
    return cred


def get_cred(cred: Cred, n: int = 1) -> Cred:
    cred.usage += n
    return cred


def put_cred(k: Machine, cred: Cred, n: int = 1) -> None:
    cred.usage -= n
    if cred.usage == 0:
        put_ucounts(k, cred.ucounts)
        put_user_ns(k, cred.user_ns)
        k.kmem_cache_free("cred_jar")


def prepare_creds(k: Machine, current: Task) -> Cred:
    """A private copy of the caller's credentials, to be changed and then committed."""
    k.kmem_cache_alloc(current, "cred_jar")
    new = current.cred.copy()
    new.usage = 1
    get_user_ns(new.user_ns)
    get_ucounts(new.ucounts)
    return new


def abort_creds(k: Machine, new: Cred) -> None:
    put_cred(k, new)


def set_cred_ucounts(k: Machine, new: Cred) -> None:
    """Point the cred at the ucounts of its (namespace, real uid)."""
    old = new.ucounts
    if old.ns is new.user_ns and old.uid == new.uid:
        return
    new.ucounts = alloc_ucounts(k, new.user_ns, new.uid)
    put_ucounts(k, old)


def set_cred_user_ns(cred: Cred, user_ns: UserNamespace) -> None:
    """Full capabilities in a new user namespace, none inherited or ambient."""
    cred.securebits = 0
    cred.cap_inheritable = CAP_EMPTY_SET
    cred.cap_permitted = cred.cap_effective = cred.cap_bset = CAP_FULL_SET
    cred.cap_ambient = CAP_EMPTY_SET
    cred.user_ns = user_ns


def commit_creds(k: Machine, task: Task, new: Cred) -> None:
    """Install ``new`` as the task's credentials, moving its RLIMIT_NPROC charge if the user changed."""
    old = task.real_cred
    ids_changed = (new.euid, new.egid, new.fsuid, new.fsgid) != (old.euid, old.egid, old.fsuid, old.fsgid)
    if ids_changed or not cred_cap_issubset(old, new):
        # Changed ids or new powers: no longer dumpable, and no parent-death signal.
        if task.mm is not None:
            task.mm.dumpable = k.suid_dumpable
        task.pdeath_signal = 0
    moved = new.uid != old.uid or new.user_ns is not old.user_ns
    if moved:
        inc_rlimit_ucounts(new.ucounts, UCOUNT_RLIMIT_NPROC, 1)
    # The caller's reference from prepare_creds becomes one of the task's two.
    task.real_cred = task.cred = get_cred(new)
    if moved:
        dec_rlimit_ucounts(old.ucounts, UCOUNT_RLIMIT_NPROC, 1)
    put_cred(k, old, 2)


def cred_cap_issubset(set_: Cred, subset: Cred) -> bool:
    """Are ``subset``'s powers within ``set_``'s: the same permitted bits or fewer in the same
    user namespace, or a namespace below one that ``set_``'s euid owns."""
    if set_.user_ns is subset.user_ns:
        return not subset.cap_permitted & ~set_.cap_permitted
    ns = subset.user_ns
    while ns.parent is not None:
        if ns.parent is set_.user_ns and ns.owner == set_.euid:
            return True
        ns = ns.parent
    return False


@traced
def copy_creds(k: Machine, current: Task, p: Task, clone_flags: int) -> None:
    """The child's credentials: shared with a thread, a fresh copy (and maybe a new user ns) otherwise."""
    if clone_flags & CLONE_THREAD:
        p.real_cred = p.cred = get_cred(p.cred, 2)
        inc_rlimit_ucounts(p.real_cred.ucounts, UCOUNT_RLIMIT_NPROC, 1)
        return
    new = prepare_creds(k, current)
    if clone_flags & CLONE_NEWUSER:
        try:
            create_user_ns(k, current, new)
            set_cred_ucounts(k, new)
        except KernelError:
            put_cred(k, new)
            raise
    # The reference from prepare_creds becomes one of the task's two.
    p.cred = p.real_cred = get_cred(new)
    inc_rlimit_ucounts(p.real_cred.ucounts, UCOUNT_RLIMIT_NPROC, 1)


def exit_creds(k: Machine, p: Task) -> None:
    """Drop the task's two references (real_cred and cred)."""
    real, cred = p.real_cred, p.cred
    put_cred(k, real)
    put_cred(k, cred)


def cap_raised(caps: int, cap: int) -> bool:
    return bool(caps >> cap & 1)


def cap_capable(cred: Cred, target_ns: UserNamespace, cap: int) -> bool:
    """Does ``cred`` hold ``cap`` over ``target_ns``: directly, or as owner of an ancestor below it."""
    ns = target_ns
    while True:
        if ns is cred.user_ns:
            return cap_raised(cred.cap_effective, cap)
        if ns.level <= cred.user_ns.level:
            return False
        parent = ns.parent
        assert parent is not None
        if parent is cred.user_ns and ns.owner == cred.euid:
            return True
        ns = parent


def ns_capable(current: Task, ns: UserNamespace, cap: int) -> bool:
    """The capability check most of the kernel makes; success marks the task PF_SUPERPRIV."""
    if cap_capable(current.cred, ns, cap):
        current.flags |= PF_SUPERPRIV
        return True
    return False


def capable(k: Machine, current: Task, cap: int) -> bool:
    return ns_capable(current, k.init_user_ns, cap)


def current_chrooted(current: Task) -> bool:
    """Is the caller's root below the root of its mount namespace."""
    fs = current.fs
    nsproxy = current.nsproxy
    if fs is None or nsproxy is None:
        return False
    ns_root = nsproxy.mnt_ns.root
    return fs.root != (ns_root, ns_root.root)


def nproc_over_limit(k: Machine, current: Task, p: Task) -> bool:
    """copy_process's RLIMIT_NPROC test, with the exemptions for root and the capable."""
    if not is_rlimit_overlimit(p.real_cred.ucounts, UCOUNT_RLIMIT_NPROC, current.signal.rlim[RLIMIT_NPROC][0]):
        return False
    if p.real_cred.uid == GLOBAL_ROOT_UID:
        return False
    return not (capable(k, current, CAP_SYS_RESOURCE) or capable(k, current, CAP_SYS_ADMIN))


def uncharge_nproc(k: Machine, p: Task) -> None:
    dec_rlimit_ucounts(p.real_cred.ucounts, UCOUNT_RLIMIT_NPROC, 1)
