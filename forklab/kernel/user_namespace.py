"""kernel/user_namespace.c: user namespaces, their id maps and the /proc map files."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.ucount import (
    INT_MAX,
    UCOUNT_COUNTS,
    UCOUNT_RLIMIT_COUNTS,
    UCOUNT_RLIMIT_MEMLOCK,
    UCOUNT_RLIMIT_MSGQUEUE,
    UCOUNT_RLIMIT_NPROC,
    UCOUNT_RLIMIT_SIGPENDING,
    UCOUNT_USER_NAMESPACES,
    Ucounts,
    dec_ucount,
    inc_ucount,
)
from forklab.uapi import capability as C
from forklab.uapi import errno as E
from forklab.uapi.resource import RLIM_INFINITY, RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NPROC, RLIMIT_SIGPENDING

if TYPE_CHECKING:
    from forklab.kernel.cred import Cred
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

USERNS_SETGROUPS_ALLOWED = 1
USERNS_INIT_FLAGS = USERNS_SETGROUPS_ALLOWED
UID_GID_MAP_MAX_EXTENTS = 340
MAX_USER_NS_LEVEL = 32
OVERFLOW_UID = 65534
OVERFLOW_GID = 65534
PROC_USER_INIT_INO = 0xEFFFFFFD
U32_MAX = 0xFFFFFFFF


class IdMap:
    """struct uid_gid_map: extents (first, lower_first, count), lower ids already global."""

    __slots__ = ("extents",)

    def __init__(self, extents: tuple[tuple[int, int, int], ...] = ()) -> None:
        self.extents = extents

    def down(self, first: int, count: int = 1) -> int:
        """map_id_range_down(): an id of this namespace to a global id; -1 if unmapped."""
        for ext_first, lower, ext_count in self.extents:
            if ext_first <= first and first + count - 1 <= ext_first + ext_count - 1:
                return first - ext_first + lower
        return -1

    def up(self, kid: int) -> int:
        """map_id_up(): a global id to this namespace's id; -1 if unmapped."""
        for first, lower, count in self.extents:
            if lower <= kid < lower + count:
                return kid - lower + first
        return -1

    def text(self) -> str:
        """/proc/<pid>/uid_map as a reader in the parent namespace sees it."""
        return "".join(f"{a:>10} {b:>10} {c:>10}\n" for a, b, c in self.extents)


class UserNamespace:
    """struct user_namespace."""

    __slots__ = (
        "count",
        "flags",
        "gid_map",
        "group",
        "inum",
        "level",
        "owner",
        "parent",
        "parent_could_setfcap",
        "rlimit_max",
        "ucount_max",
        "ucounts",
        "uid_map",
    )

    parent: UserNamespace | None
    level: int
    owner: int
    group: int
    inum: int
    count: int
    flags: int
    uid_map: IdMap
    gid_map: IdMap
    ucounts: Ucounts | None
    ucount_max: list[int]
    rlimit_max: list[int]
    parent_could_setfcap: bool

    def __init__(self, parent: UserNamespace | None, owner: int, group: int, inum: int) -> None:
        self.parent = parent
        self.level = 0 if parent is None else parent.level + 1
        self.owner = owner
        self.group = group
        self.inum = inum
        self.count = 1
        self.flags = USERNS_INIT_FLAGS if parent is None else parent.flags
        self.uid_map = IdMap()
        self.gid_map = IdMap()
        self.ucounts = None
        self.ucount_max = [INT_MAX] * UCOUNT_COUNTS
        self.rlimit_max = [RLIM_INFINITY] * UCOUNT_RLIMIT_COUNTS
        self.parent_could_setfcap = False

    def __repr__(self) -> str:
        return f"<user_ns level={self.level} inum={self.inum}>"


def make_init_user_ns() -> UserNamespace:
    ns = UserNamespace(None, 0, 0, PROC_USER_INIT_INO)
    ns.uid_map = IdMap(((0, 0, U32_MAX),))
    ns.gid_map = IdMap(((0, 0, U32_MAX),))
    return ns


def get_user_ns(ns: UserNamespace) -> UserNamespace:
    ns.count += 1
    return ns


def put_user_ns(k: Machine, ns: UserNamespace | None) -> None:
    """Drop a reference; the last one frees the namespace and its parent's reference."""
    while ns is not None and ns.parent is not None:
        ns.count -= 1
        if ns.count:
            return
        parent = ns.parent
        assert ns.ucounts is not None
        dec_ucount(k, ns.ucounts, UCOUNT_USER_NAMESPACES)
        k.kmem_cache_free("user_namespace")
        ns = parent
    if ns is not None:
        ns.count -= 1


def from_kuid(ns: UserNamespace, kuid: int) -> int:
    return ns.uid_map.up(kuid)


def from_kgid(ns: UserNamespace, kgid: int) -> int:
    return ns.gid_map.up(kgid)


def from_kuid_munged(ns: UserNamespace, kuid: int) -> int:
    uid = ns.uid_map.up(kuid)
    return OVERFLOW_UID if uid == -1 else uid


def from_kgid_munged(ns: UserNamespace, kgid: int) -> int:
    gid = ns.gid_map.up(kgid)
    return OVERFLOW_GID if gid == -1 else gid


def make_kuid(ns: UserNamespace, uid: int) -> int:
    return ns.uid_map.down(uid)


def make_kgid(ns: UserNamespace, gid: int) -> int:
    return ns.gid_map.down(gid)


def in_userns(ancestor: UserNamespace, child: UserNamespace) -> bool:
    """Is ``child`` ``ancestor`` or below it."""
    ns: UserNamespace | None = child
    while ns is not None and ns.level > ancestor.level:
        ns = ns.parent
    return ns is ancestor


def create_user_ns(k: Machine, current: Task, new: Cred) -> None:
    """Give the prepared cred ``new`` a fresh user namespace below its current one."""
    from forklab.kernel.cred import cap_raised, current_chrooted, set_cred_user_ns

    parent_ns = new.user_ns
    owner, group = new.euid, new.egid
    if parent_ns.level > MAX_USER_NS_LEVEL:
        raise KernelError(E.ENOSPC, "create_user_ns: user namespaces nested deeper than 32 levels")
    ucounts = inc_ucount(k, parent_ns, owner, UCOUNT_USER_NAMESPACES)
    if ucounts is None:
        raise KernelError(E.ENOSPC, "create_user_ns: max_user_namespaces reached (inc_user_namespaces)")
    try:
        if current_chrooted(current):
            raise KernelError(E.EPERM, "create_user_ns: the caller is chrooted")
        if from_kuid(parent_ns, owner) == -1 or from_kgid(parent_ns, group) == -1:
            raise KernelError(E.EPERM, "create_user_ns: the caller's euid or egid has no mapping in its namespace")
        k.kmem_cache_alloc(current, "user_namespace")
    except KernelError:
        dec_ucount(k, ucounts, UCOUNT_USER_NAMESPACES)
        raise
    ns = UserNamespace(parent_ns, owner, group, k.proc_alloc_inum())
    ns.parent_could_setfcap = cap_raised(new.cap_effective, C.CAP_SETFCAP)
    rlim = current.signal.rlim
    ns.rlimit_max[UCOUNT_RLIMIT_NPROC] = enforced_nproc_rlimit(k, current)
    ns.rlimit_max[UCOUNT_RLIMIT_MSGQUEUE] = rlim[RLIMIT_MSGQUEUE][0]
    ns.rlimit_max[UCOUNT_RLIMIT_SIGPENDING] = rlim[RLIMIT_SIGPENDING][0]
    ns.rlimit_max[UCOUNT_RLIMIT_MEMLOCK] = rlim[RLIMIT_MEMLOCK][0]
    ns.ucounts = ucounts
    # The cred's reference on its old namespace now belongs to the new namespace as parent.
    set_cred_user_ns(new, ns)


def enforced_nproc_rlimit(k: Machine, current: Task) -> int:
    """RLIMIT_NPROC as it binds the creator: not at all for global root."""
    cred = current.cred
    if cred.uid == 0 and cred.user_ns is k.init_user_ns:
        return RLIM_INFINITY
    return current.signal.rlim[RLIMIT_NPROC][0]


def userns_may_setgroups(ns: UserNamespace) -> bool:
    return bool(ns.gid_map.extents) and bool(ns.flags & USERNS_SETGROUPS_ALLOWED)


# ---- /proc/<pid>/{uid_map,gid_map,setgroups} ---------------------------------------------------


def parse_map(text: str) -> list[tuple[int, int, int]]:
    """Lines of "first lower_first count"; EINVAL for anything else, overlaps or wrap-around."""
    extents: list[tuple[int, int, int]] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        words = line.split()
        if len(words) != 3 or not all(w.isdigit() for w in words):
            raise KernelError(E.EINVAL, f"map_write: {line!r} is not three numbers")
        first, lower, count = (int(w) for w in words)
        if first == U32_MAX or lower == U32_MAX or first > U32_MAX or lower > U32_MAX:
            raise KernelError(E.EINVAL, "map_write: an id of 4294967295 is invalid")
        if count == 0 or first + count > U32_MAX + 1 or lower + count > U32_MAX + 1:
            raise KernelError(E.EINVAL, "map_write: the count is zero or the range wraps")
        for f, lo, c in extents:
            if (first < f + c and f < first + count) or (lower < lo + c and lo < lower + count):
                raise KernelError(E.EINVAL, "map_write: extents overlap")
        if len(extents) + 1 == UID_GID_MAP_MAX_EXTENTS and line is not lines[-1]:
            raise KernelError(E.EINVAL, f"map_write: more than {UID_GID_MAP_MAX_EXTENTS} extents")
        extents.append((first, lower, count))
    if not extents:
        raise KernelError(E.EINVAL, "map_write: no extent given")
    return extents


def new_idmap_permitted(
    k: Machine, current: Task, ns: UserNamespace, gid: bool, extents: list[tuple[int, int, int]]
) -> bool:
    from forklab.kernel.cred import cap_capable

    cred = current.cred
    cap = C.CAP_SETGID if gid else C.CAP_SETUID
    if not gid and not verify_root_map(current, ns, extents):
        return False
    parent = ns.parent
    assert parent is not None
    # Mapping just one's own id needs no privilege (for gids, only once setgroups is denied).
    if len(extents) == 1 and extents[0][2] == 1 and ns.owner == cred.euid:
        lower = extents[0][1]
        if not gid and make_kuid(parent, lower) == cred.euid:
            return True
        if gid and not ns.flags & USERNS_SETGROUPS_ALLOWED and make_kgid(parent, lower) == cred.egid:
            return True
    return cap_capable(cred, parent, cap)


def verify_root_map(current: Task, map_ns: UserNamespace, extents: list[tuple[int, int, int]]) -> bool:
    """Mapping the parent's root (lower id 0) needs CAP_SETFCAP, as the creator had it."""
    from forklab.kernel.cred import cap_capable

    if not any(lower == 0 for _, lower, _ in extents):
        return True
    if map_ns is current.cred.user_ns:
        return map_ns.parent_could_setfcap
    assert map_ns.parent is not None
    return cap_capable(current.cred, map_ns.parent, C.CAP_SETFCAP)


def map_write(k: Machine, current: Task, ns: UserNamespace, gid: bool, text: str) -> None:
    from forklab.kernel.cred import cap_capable

    if len(text.encode()) >= 4096:
        raise KernelError(E.EINVAL, "map_write: writes must be shorter than a page")
    id_map = ns.gid_map if gid else ns.uid_map
    if id_map.extents:
        raise KernelError(E.EPERM, "map_write: the map was already written (only one write is allowed)")
    if not cap_capable(current.cred, ns, C.CAP_SYS_ADMIN):
        raise KernelError(E.EPERM, "map_write: the writer needs CAP_SYS_ADMIN over the target namespace")
    extents = parse_map(text)
    if not new_idmap_permitted(k, current, ns, gid, extents):
        raise KernelError(
            E.EPERM, "map_write: not permitted to map these ids (needs CAP_SETUID/CAP_SETGID in the parent)"
        )
    parent = ns.parent
    assert parent is not None
    parent_map = parent.gid_map if gid else parent.uid_map
    mapped = []
    for first, lower, count in extents:
        kernel_first = parent_map.down(lower, count)
        if kernel_first == -1:
            raise KernelError(E.EPERM, f"map_write: ids {lower}..{lower + count - 1} are not mapped in the parent")
        mapped.append((first, kernel_first, count))
    if gid:
        ns.gid_map = IdMap(tuple(mapped))
    else:
        ns.uid_map = IdMap(tuple(mapped))


def proc_uid_map_store(gid: bool) -> Callable[[Machine, Task, str], None]:
    """The writer of /proc/<pid>/uid_map (or gid_map): the target is the task's user namespace."""

    def store(k: Machine, task: Task, text: str) -> None:
        current = k.current
        assert current is not None
        ns = task.cred.user_ns
        if ns.parent is None:
            raise KernelError(E.EPERM, "map_write: the initial user namespace's maps are fixed")
        opener_ns = current.cred.user_ns
        if opener_ns is not ns and opener_ns is not ns.parent:
            raise KernelError(E.EPERM, "map_write: only the namespace itself or its parent may write the map")
        map_write(k, current, ns, gid, text)

    return store


def proc_setgroups_show(k: Machine, task: Task, _ns: object) -> str:
    return "allow\n" if task.cred.user_ns.flags & USERNS_SETGROUPS_ALLOWED else "deny\n"


def proc_setgroups_store(k: Machine, task: Task, text: str) -> None:
    from forklab.kernel.cred import cap_capable

    current = k.current
    assert current is not None
    ns = task.cred.user_ns
    if not cap_capable(current.cred, ns, C.CAP_SYS_ADMIN):
        raise KernelError(E.EACCES, "setgroups: the writer needs CAP_SYS_ADMIN over the namespace")
    word = text.strip()
    if word not in ("allow", "deny"):
        raise KernelError(E.EINVAL, f"setgroups: {word!r} is neither allow nor deny")
    if word == "allow":
        if not ns.flags & USERNS_SETGROUPS_ALLOWED:
            raise KernelError(E.EPERM, "setgroups: once denied it cannot be allowed again")
    else:
        if ns.gid_map.extents:
            raise KernelError(E.EPERM, "setgroups: cannot deny after gid_map was written")
        ns.flags &= ~USERNS_SETGROUPS_ALLOWED
