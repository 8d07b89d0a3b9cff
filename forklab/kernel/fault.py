"""lib/fault-inject.c and /proc/thread-self/fail-nth: make the N-th allocation fail.

Every allocation site of the model (a ``kmem_cache_alloc`` on behalf of a task) is an
injection point. Writing N to a task's fail-nth makes the N-th point it passes fail with
ENOMEM; reading gives what is left of the count, 0 once the fault has been injected. The
points are the model's allocation sites in the kernel's order, so N counts the model's
allocations (the kernel counts every slab and page allocation, a much larger number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.task import Task


def should_fail(current: Task, site: str) -> None:
    current.fail_nth -= 1
    if current.fail_nth == 0:
        raise KernelError(E.ENOMEM, f"{site}: allocation failed (fault injected through fail-nth)")


def write_fail_nth(task: Task, text: str) -> None:
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise KernelError(E.EINVAL, f"fail-nth: {text.strip()!r} is not a number") from None
    if value < 0 or value > 0xFFFFFFFF:
        raise KernelError(E.EINVAL, "fail-nth: out of range")
    task.fail_nth = value


def read_fail_nth(task: Task) -> str:
    return f"{task.fail_nth}\n"
