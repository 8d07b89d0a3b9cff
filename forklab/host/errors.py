"""What the host layer raises: every user-level problem is one of these, with a message."""

from __future__ import annotations


class HostError(Exception):
    """A host-side call could not be made or its answer understood."""


class HostUnavailable(HostError):
    """This machine cannot run sandboxes (not Linux, not root, no compiler, ...)."""


class HostTimeout(HostError):
    """A call or the sandbox as a whole ran out of time; the sandbox has been killed."""


class HostTaskGone(HostError):
    """The task has exited or been killed: it takes no more calls."""


class HostTaskBusy(HostError):
    """The task is still asleep in its previous call; collect that with ``result()`` first."""
