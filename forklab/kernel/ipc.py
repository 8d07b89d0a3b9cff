"""ipc/namespace.c and the SysV semaphore undo list of ipc/sem.c."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.ftrace import traced
from forklab.kernel.ns_common import NsCommon, create_ns, get_ns
from forklab.kernel.ucount import UCOUNT_IPC_NAMESPACES
from forklab.uapi.sched import CLONE_NEWIPC, CLONE_SYSVSEM

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace

PROC_IPC_INIT_INO = 0xEFFFFFFF


class IpcNamespace(NsCommon):
    """struct ipc_namespace (no SysV objects are modelled inside it)."""

    __slots__ = ()
    ucount_type = UCOUNT_IPC_NAMESPACES
    cache = "ipc_namespace"
    kind = "ipc"


def copy_ipcs(k: Machine, current: Task, flags: int, user_ns: UserNamespace, old: IpcNamespace) -> IpcNamespace:
    if not flags & CLONE_NEWIPC:
        return get_ns(old)
    return create_ns(k, current, IpcNamespace, user_ns)


class SemUndoList:
    """struct sem_undo_list: shared between tasks cloned with CLONE_SYSVSEM."""

    __slots__ = ("refcnt",)

    def __init__(self) -> None:
        self.refcnt = 1


@traced
def copy_semundo(k: Machine, current: Task, flags: int, p: Task) -> None:
    """CLONE_SYSVSEM shares the undo list, creating it in the parent first if it has none."""
    if not flags & CLONE_SYSVSEM:
        p.sysvsem = None
        return
    undo = current.sysvsem
    if undo is None:
        k.kmem_cache_alloc(current, "sem_undo_list")
        undo = current.sysvsem = SemUndoList()
    undo.refcnt += 1
    p.sysvsem = undo


@traced
def exit_sem(k: Machine, tsk: Task) -> None:
    undo = tsk.sysvsem
    if undo is None:
        return
    tsk.sysvsem = None
    undo.refcnt -= 1
    if undo.refcnt == 0:
        k.kmem_cache_free("sem_undo_list")
