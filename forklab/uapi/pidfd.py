"""pidfd_open() and pidfd_send_signal() flags (uapi/linux/pidfd.h)."""

from __future__ import annotations

from forklab.uapi.fcntl import O_EXCL, O_NONBLOCK

PIDFD_THREAD = O_EXCL
PIDFD_NONBLOCK = O_NONBLOCK
PIDFD_SIGNAL_THREAD = 1 << 0
PIDFD_SIGNAL_THREAD_GROUP = 1 << 1
PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2
