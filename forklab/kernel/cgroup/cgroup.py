"""kernel/cgroup/cgroup.c: the cgroup v2 hierarchy, its threaded mode, migration and fork's hooks.

The default hierarchy knows one controller, pids; a machine may have bound it to a v1
hierarchy instead (``bind_to_legacy``), and then v2 shows no controller at all. Each cgroup
keeps its live tasks in the order they arrived (what cgroup.procs lists) and, apart, the
dying ones that still hold a pids charge until they are reaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.cgroup.pids import PidsCss, pids_charge, pids_try_charge, pids_uncharge
from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.uapi import errno as E
from forklab.uapi.sched import CLONE_INTO_CGROUP, CLONE_THREAD

if TYPE_CHECKING:
    from forklab.kernel.fork import KernelCloneArgs
    from forklab.kernel.fs.vfs import Inode
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

PIDS = "pids"
THREADED_SUBSYS = frozenset({PIDS})  # controllers that work inside a threaded subtree
INT_MAX = (1 << 31) - 1


class Cgroup:
    """struct cgroup."""

    __slots__ = (
        "children",
        "dead",
        "dom_cgrp",
        "dying",
        "files",
        "kn",
        "max_depth",
        "max_descendants",
        "name",
        "nr_threaded_children",
        "parent",
        "pids",
        "root",
        "subtree_control",
        "tasks",
    )

    def __init__(self, root: CgroupRoot, name: str, parent: Cgroup | None) -> None:
        self.root = root
        self.name = name
        self.parent = parent
        self.children: dict[str, Cgroup] = {}
        self.subtree_control: frozenset[str] = frozenset()
        self.dom_cgrp = self  # another cgroup once this one is threaded
        self.nr_threaded_children = 0
        self.max_depth = INT_MAX
        self.max_descendants = INT_MAX
        self.tasks: dict[Task, None] = {}  # live tasks, in the order they came
        self.dying: dict[Task, None] = {}  # past cgroup_exit, not yet reaped
        self.dead = False
        # The pids css, on the root and wherever the parent enabled pids.
        self.pids: PidsCss | None = None
        if parent is None:
            self.pids = PidsCss(None)
        # The directory and its files, once cgroupfs made them (cgroupfs.py).
        self.kn: Inode | None = None
        self.files: dict[str, Inode] = {}

    def __repr__(self) -> str:
        return f"<cgroup {self.path()}>"

    def path(self) -> str:
        names = []
        node: Cgroup | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(names))

    def ancestors(self) -> list[Cgroup]:
        """This cgroup and every cgroup above it, nearest first."""
        found = []
        node: Cgroup | None = self
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def descendants(self) -> list[Cgroup]:
        """This cgroup and every cgroup below it, parents before children."""
        found = [self]
        for child in self.children.values():
            found.extend(child.descendants())
        return found


class CssSet:
    """struct css_set: the cgroup on the default hierarchy and the pids css a task is in."""

    __slots__ = ("dfl_cgrp", "pids")

    def __init__(self, dfl_cgrp: Cgroup, pids: PidsCss) -> None:
        self.dfl_cgrp = dfl_cgrp
        self.pids = pids

    def __repr__(self) -> str:
        return f"<css_set {self.dfl_cgrp.path()} pids={self.pids.name}>"


class CgroupRoot:
    """cgrp_dfl_root: the hierarchy, the controllers it has, its mount-wide flags."""

    def __init__(self) -> None:
        self.subsys_mask: frozenset[str] = frozenset({PIDS})
        self.ns_delegate = False  # nsdelegate: cgroup namespaces are delegation boundaries
        self.pids_localevents = False
        self.root = Cgroup(self, "", None)
        self.init_css_set = CssSet(self.root, self.pids_root)

    @property
    def pids_root(self) -> PidsCss:
        assert self.root.pids is not None
        return self.root.pids


def bind_to_legacy(root: CgroupRoot, name: str) -> None:
    """rebind_subsystems(): a v1 hierarchy takes the controller; EBUSY while v2 uses it."""
    if name not in root.subsys_mask:
        raise KernelError(E.EBUSY, f"rebind_subsystems: {name} is not on the default hierarchy")
    if name in root.root.subtree_control:
        raise KernelError(E.EBUSY, f"rebind_subsystems: {name} is enabled below the v2 root")
    root.subsys_mask = root.subsys_mask - {name}


# ---- what a cgroup is -----------------------------------------------------------------------------


def cgroup_is_threaded(cgrp: Cgroup) -> bool:
    return cgrp.dom_cgrp is not cgrp


def cgroup_is_mixable(cgrp: Cgroup) -> bool:
    """Only the root may hold tasks beside children with controllers."""
    return cgrp.parent is None


def cgroup_is_thread_root(cgrp: Cgroup) -> bool:
    return cgrp.nr_threaded_children > 0


def cgroup_is_valid_domain(cgrp: Cgroup) -> bool:
    """Can it hold processes: not threaded, and no ancestor a thread root or threaded."""
    if cgroup_is_threaded(cgrp):
        return False
    for above in cgrp.ancestors()[1:]:
        if not cgroup_is_mixable(above) and cgroup_is_thread_root(above):
            return False
        if cgroup_is_threaded(above):
            return False
    return True


def cgroup_is_populated(cgrp: Cgroup) -> bool:
    return bool(cgrp.tasks) or any(cgroup_is_populated(child) for child in cgrp.children.values())


def cgroup_can_be_thread_root(cgrp: Cgroup) -> bool:
    if cgroup_is_mixable(cgrp):
        return True
    if cgroup_is_threaded(cgrp):
        return False
    if any(cgroup_is_populated(c) and not cgroup_is_threaded(c) for c in cgrp.children.values()):
        return False
    return not cgrp.subtree_control - THREADED_SUBSYS


def cgroup_control(cgrp: Cgroup) -> frozenset[str]:
    """The controllers it may enable for its children: its parent's, or the hierarchy's."""
    mask = cgrp.parent.subtree_control if cgrp.parent is not None else cgrp.root.subsys_mask
    return mask & THREADED_SUBSYS if cgroup_is_threaded(cgrp) else mask


def cgroup_type_text(cgrp: Cgroup) -> str:
    if cgroup_is_threaded(cgrp):
        return "threaded\n"
    if not cgroup_is_valid_domain(cgrp):
        return "domain invalid\n"
    if cgroup_is_thread_root(cgrp):
        return "domain threaded\n"
    return "domain\n"


def is_descendant(cgrp: Cgroup, ancestor: Cgroup) -> bool:
    return ancestor in cgrp.ancestors()


def find_css_set(old: CssSet, cgrp: Cgroup) -> CssSet:
    """The css_set for a task of ``old`` moving to ``cgrp``: a v1 pids css stays as it is."""
    pids = old.pids
    if PIDS in cgrp.root.subsys_mask:
        pids = effective_pids(cgrp)
    return CssSet(cgrp, pids)


def effective_pids(cgrp: Cgroup) -> PidsCss:
    """The pids css of the nearest cgroup at or above ``cgrp`` that has one."""
    for node in cgrp.ancestors():
        if node.pids is not None:
            return node.pids
    raise AssertionError("the root always has a pids css")


# ---- fork and exit --------------------------------------------------------------------------------


@traced
def cgroup_fork(k: Machine, child: Task) -> None:
    """Until cgroup_post_fork the child points at init_css_set without being on its lists."""
    child.cgroups = k.cgroup_root.init_css_set


@traced
def cgroup_can_fork(k: Machine, current: Task, child: Task, kargs: KernelCloneArgs) -> None:
    """Pick the destination (the parent's css_set, or CLONE_INTO_CGROUP's) and charge the pids css."""
    assert current.cgroups is not None
    cset = current.cgroups
    if kargs.flags & CLONE_INTO_CGROUP:
        cset = cgroup_css_set_fork(k, current, kargs)
    pids_try_charge(cset.pids, 1)
    kargs.cset = cset


def cgroup_css_set_fork(k: Machine, current: Task, kargs: KernelCloneArgs) -> CssSet:
    """The fd of CLONE_INTO_CGROUP: a live cgroup directory the caller could move the child into."""
    from forklab.kernel.cgroup.cgroupfs import cgroup_get_from_fd, cgroup_may_write

    assert current.cgroups is not None and current.nsproxy is not None
    dst = cgroup_get_from_fd(current, kargs.cgroup)
    cgroup_may_write(k, current, dst)
    src = current.cgroups.dfl_cgrp
    cgroup_attach_permissions(k, current, src, dst, not kargs.flags & CLONE_THREAD)
    return find_css_set(current.cgroups, dst)


def cgroup_cancel_fork(k: Machine, child: Task, kargs: KernelCloneArgs) -> None:
    if kargs.cset is not None:
        pids_uncharge(kargs.cset.pids, 1)
        kargs.cset = None


@traced
def cgroup_post_fork(k: Machine, child: Task, kargs: KernelCloneArgs) -> None:
    cset = kargs.cset
    assert cset is not None
    child.cgroups = cset
    kargs.cset = None
    # Idle tasks (pid 0) stay off the lists: no cgroup.procs shows them.
    if child.pid:
        cset.dfl_cgrp.tasks[child] = None


def cgroup_exit(k: Machine, task: Task) -> None:
    """do_exit: the task leaves its cgroup's live tasks; its pids charge stays until it is reaped."""
    cset = task.cgroups
    if cset is None or task not in cset.dfl_cgrp.tasks:
        return
    del cset.dfl_cgrp.tasks[task]
    cset.dfl_cgrp.dying[task] = None


def cgroup_release(k: Machine, task: Task) -> None:
    """release_task: the pids charge is returned."""
    cset = task.cgroups
    if cset is None:
        return
    cset.dfl_cgrp.dying.pop(task, None)
    pids_uncharge(cset.pids, 1)
    task.cgroups = None


# ---- migration ------------------------------------------------------------------------------------


def cgroup_procs_write_permission(k: Machine, current: Task, src: Cgroup, dst: Cgroup) -> None:
    """Write access to cgroup.procs of the common ancestor; under nsdelegate, both ends in sight."""
    from forklab.kernel.cgroup.cgroupfs import cgroup_may_write

    common = next(node for node in src.ancestors() if is_descendant(dst, node))
    cgroup_may_write(k, current, common)
    assert current.nsproxy is not None
    ns_root = current.nsproxy.cgroup_ns.root_cset.dfl_cgrp
    if dst.root.ns_delegate and not (is_descendant(src, ns_root) and is_descendant(dst, ns_root)):
        raise KernelError(E.ENOENT, "cgroup_procs_write_permission: a cgroup outside the caller's namespace")


def cgroup_migrate_vet_dst(dst: Cgroup) -> None:
    if not cgroup_is_valid_domain(dst.dom_cgrp):
        raise KernelError(E.EOPNOTSUPP, f"cgroup_migrate_vet_dst: {dst.path()} cannot hold tasks (domain invalid)")
    if cgroup_can_be_thread_root(dst) or cgroup_is_threaded(dst):
        return
    if dst.subtree_control:
        raise KernelError(E.EBUSY, f"cgroup_migrate_vet_dst: {dst.path()} has controllers enabled for its children")


def cgroup_attach_permissions(k: Machine, current: Task, src: Cgroup, dst: Cgroup, threadgroup: bool) -> None:
    cgroup_procs_write_permission(k, current, src, dst)
    cgroup_migrate_vet_dst(dst)
    if not threadgroup and src.dom_cgrp is not dst.dom_cgrp:
        raise KernelError(E.EOPNOTSUPP, "cgroup_attach_permissions: a thread cannot leave its domain")


def cgroup_attach_task(k: Machine, dst: Cgroup, leader: Task, threadgroup: bool) -> None:
    """Move the task (or its whole thread group); tasks already exiting are left where they are."""
    from forklab.kernel.task import PF_EXITING

    tasks = list(leader.signal.thread_head) if threadgroup else [leader]
    for task in tasks:
        old = task.cgroups
        if old is None or task.flags & PF_EXITING or old.dfl_cgrp is dst:
            continue
        move_task(task, old, find_css_set(old, dst))


def move_task(task: Task, old: CssSet, new: CssSet) -> None:
    """css_set_move_task() and, if the pids css changes, pids_can_attach()'s charge move."""
    if new.pids is not old.pids:
        pids_charge(new.pids, 1)
        pids_uncharge(old.pids, 1)
    del old.dfl_cgrp.tasks[task]
    new.dfl_cgrp.tasks[task] = None
    task.cgroups = new


# ---- mkdir, rmdir, controllers, threaded mode -----------------------------------------------------


def cgroup_mkdir(k: Machine, parent: Cgroup, name: str) -> Cgroup:
    if "\n" in name:
        raise KernelError(E.EINVAL, "cgroup_mkdir: a newline in the name")
    if parent.dead:
        raise KernelError(E.ENODEV, "cgroup_mkdir: the parent was removed")
    check_hierarchy_limits(parent)
    cgrp = Cgroup(parent.root, name, parent)
    if PIDS in parent.subtree_control:
        cgrp.pids = PidsCss(parent.pids, cgrp.path())
    parent.children[name] = cgrp
    return cgrp


def check_hierarchy_limits(parent: Cgroup) -> None:
    """cgroup.max.depth and cgroup.max.descendants of every level above refuse with EAGAIN."""
    for depth, node in enumerate(parent.ancestors()):
        if depth >= node.max_depth or len(node.descendants()) - 1 >= node.max_descendants:
            raise KernelError(E.EAGAIN, f"cgroup_check_hierarchy_limits: {node.path()} allows no more cgroups")


def cgroup_rmdir(k: Machine, cgrp: Cgroup) -> None:
    """Refused while a live task is in it or a cgroup below it; dying tasks do not count."""
    if cgroup_is_populated(cgrp):
        raise KernelError(E.EBUSY, f"cgroup_destroy_locked: {cgrp.path()} has live tasks")
    if cgrp.children:
        raise KernelError(E.EBUSY, f"cgroup_destroy_locked: {cgrp.path()} has child cgroups")
    parent = cgrp.parent
    assert parent is not None
    if cgroup_is_threaded(cgrp):
        parent.nr_threaded_children -= 1
    del parent.children[cgrp.name]
    cgrp.dead = True


def parse_subtree_control(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """ "+name" and "-name" tokens (the last word about a controller wins): (enable, disable)."""
    enable: set[str] = set()
    disable: set[str] = set()
    for token in text.strip().split(" "):
        if not token:
            continue
        name = token[1:]
        if name != PIDS:
            raise KernelError(E.EINVAL, f"cgroup_subtree_control_write: no controller {name!r}")
        if token[0] == "+":
            enable.add(name)
            disable.discard(name)
        elif token[0] == "-":
            disable.add(name)
            enable.discard(name)
        else:
            raise KernelError(E.EINVAL, f"cgroup_subtree_control_write: {token!r} lacks + or -")
    return frozenset(enable), frozenset(disable)


def cgroup_subtree_control_write(k: Machine, cgrp: Cgroup, text: str) -> None:
    enable, disable = parse_subtree_control(text)
    if cgrp.dead:
        raise KernelError(E.ENODEV, "cgroup_subtree_control_write: the cgroup was removed")
    enable -= cgrp.subtree_control
    disable &= cgrp.subtree_control
    if enable - cgroup_control(cgrp):
        raise KernelError(E.ENOENT, f"cgroup_subtree_control_write: {' '.join(sorted(enable))} not available here")
    if any(disable & child.subtree_control for child in cgrp.children.values()):
        raise KernelError(E.EBUSY, "cgroup_subtree_control_write: a child still enables it for its children")
    if not enable and not disable:
        return
    cgroup_vet_subtree_control_enable(cgrp, enable)
    cgrp.subtree_control = (cgrp.subtree_control | enable) - disable
    apply_control(cgrp)


def cgroup_vet_subtree_control_enable(cgrp: Cgroup, enable: frozenset[str]) -> None:
    if not enable:
        return
    if not cgroup_is_valid_domain(cgrp.dom_cgrp):
        raise KernelError(E.EOPNOTSUPP, "cgroup_vet_subtree_control_enable: the domain is invalid")
    if cgroup_is_mixable(cgrp):
        return
    if enable - THREADED_SUBSYS:
        if cgroup_is_thread_root(cgrp) or cgroup_is_threaded(cgrp):
            raise KernelError(
                E.EOPNOTSUPP, "cgroup_vet_subtree_control_enable: a domain controller in a thread subtree"
            )
    elif cgroup_can_be_thread_root(cgrp) or cgroup_is_threaded(cgrp):
        return
    if cgrp.tasks:
        raise KernelError(E.EBUSY, "cgroup_vet_subtree_control_enable: the cgroup has tasks of its own")


def apply_control(cgrp: Cgroup) -> None:
    """Make or kill the children's pids csses, and move the live tasks below to their new css."""
    for node in cgrp.descendants()[1:]:
        assert node.parent is not None
        wanted = PIDS in node.parent.subtree_control
        if wanted and node.pids is None:
            node.pids = PidsCss(node.parent.pids, node.path())
        elif not wanted:
            node.pids = None
    if PIDS not in cgrp.root.subsys_mask:
        return
    for node in cgrp.descendants()[1:]:
        for task in list(node.tasks):
            assert task.cgroups is not None
            if task.cgroups.pids is not effective_pids(node):
                move_task(task, task.cgroups, find_css_set(task.cgroups, node))


def cgroup_type_write(k: Machine, cgrp: Cgroup, text: str) -> None:
    """Only "threaded" can be written, and it cannot be undone."""
    if text.strip() != "threaded":
        raise KernelError(E.EINVAL, f"cgroup_type_write: only 'threaded' can be written, not {text.strip()!r}")
    if cgrp.dead:
        raise KernelError(E.ENOENT, "cgroup_type_write: the cgroup was removed")
    cgroup_enable_threaded(cgrp)


def cgroup_enable_threaded(cgrp: Cgroup) -> None:
    parent = cgrp.parent
    if parent is None or cgroup_is_threaded(cgrp):
        return
    if cgroup_is_populated(cgrp) or cgrp.subtree_control - THREADED_SUBSYS:
        raise KernelError(E.EOPNOTSUPP, f"cgroup_enable_threaded: {cgrp.path()} is populated or has domain controllers")
    dom = parent.dom_cgrp
    if not cgroup_is_valid_domain(dom) or not cgroup_can_be_thread_root(dom):
        raise KernelError(E.EOPNOTSUPP, f"cgroup_enable_threaded: {dom.path()} cannot be a thread root")
    for node in cgrp.descendants():
        if node is cgrp or cgroup_is_threaded(node):
            node.dom_cgrp = dom
    parent.nr_threaded_children += 1


def kstrtoll(text: str) -> int:
    """An integer as kstrtoll(text, 0) reads it: a sign, then 0x hex, 0 octal or decimal."""
    body = text[1:] if text[:1] in "+-" else text
    base = 16 if body[:2].lower() == "0x" else 8 if body[:1] == "0" and len(body) > 1 else 10
    digits = body[2:] if base == 16 else body
    try:
        value = int(digits, base) if digits and digits.isalnum() else None
    except ValueError:
        value = None
    if value is None:
        raise KernelError(E.EINVAL, f"kstrtoll: {text!r} is not a number")
    value = -value if text.startswith("-") else value
    if not -(1 << 63) <= value < 1 << 63:
        raise KernelError(E.ERANGE, f"kstrtoll: {text!r} does not fit in 64 bits")
    return value


def check_cgroups(k: Machine, tasks: list[Task], problems: list[str]) -> None:
    """Each task with a pid is on exactly one list of its cgroup; each pids css counts exactly the
    tasks charged below it (from cgroup_can_fork until release_task)."""
    expected: dict[PidsCss, int] = {}
    for cgrp in k.cgroup_root.root.descendants():
        if cgrp.pids is not None:
            expected.setdefault(cgrp.pids, 0)
    for t in tasks:
        cset = t.cgroups
        if cset is None:
            problems.append(f"{t} has a pid but no css_set")
            continue
        for css in cset.pids.levels():
            expected[css] = expected.get(css, 0) + 1
        lists = (t in cset.dfl_cgrp.tasks) + (t in cset.dfl_cgrp.dying)
        if t.pid and lists != 1:
            problems.append(f"{t} is on {lists} of {cset.dfl_cgrp}'s task lists, not one")
    for css, count in expected.items():
        if css.counter != count:
            problems.append(f"{css} counts {css.counter} tasks but {count} are charged to it")
