"""How the model fails: the kernel's ``-errno`` returns, as an exception."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forklab.kernel.task import TASK_INTERRUPTIBLE
from forklab.uapi import errno as E

if TYPE_CHECKING:
    from forklab.kernel.wait import WaitQueue, WakeTest


class KernelError(Exception):
    """A kernel function refused: ``errno`` is what the syscall returns (negated).

    ``reason`` names the function and the check, for instance
    ``"copy_process: CLONE_SIGHAND requires CLONE_VM"``, so a user can find the line in the
    kernel source.
    """

    __slots__ = ("errno", "reason", "unwound_from")

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(errno, reason)
        self.errno = errno
        self.reason = reason
        # copy_process records the bad_fork_* label its unwinding started from.
        self.unwound_from: str | None = None

    def __str__(self) -> str:
        return f"{E.name(self.errno)}: {self.reason}"


class NotModelled(KernelError):
    """A behaviour the model does not implement: ENOSYS, never a silent success."""

    def __init__(self, what: str) -> None:
        super().__init__(E.ENOSYS, f"not modelled: {what}")


class KernelBug(AssertionError):
    """An invariant of the model is broken (what the kernel would BUG_ON or WARN about)."""


class WouldBlock(Exception):
    """The current task has to sleep on ``wq`` in ``state`` until woken; then ``retry`` runs.

    With no queue, only a direct wake_up_process() wakes it.

    ``value`` is the result the call will return once it completes, when that is already
    known (a vfork parent knows the child's pid before its wait ends). ``wake_if`` is the sleeper's
    own wake function: a wake-up whose key it refuses leaves it asleep.
    """

    def __init__(
        self,
        wq: WaitQueue | None,
        retry: Callable[[], Any],
        state: int = TASK_INTERRUPTIBLE,
        value: Any = None,
        wake_if: WakeTest | None = None,
    ) -> None:
        super().__init__()
        self.wq = wq
        self.retry = retry
        self.state = state
        self.value = value
        self.wake_if = wake_if
