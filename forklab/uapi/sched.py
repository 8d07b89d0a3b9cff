"""Clone flags, ``struct clone_args`` and scheduling policies (uapi/linux/sched.h)."""

from __future__ import annotations

import struct
from typing import NamedTuple

CSIGNAL = 0x000000FF
CLONE_NEWTIME = 0x00000080
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000
# clone3 only: above the 32 bits that legacy clone passes on.
CLONE_CLEAR_SIGHAND = 0x100000000
CLONE_INTO_CGROUP = 0x200000000

CLONE_LEGACY_FLAGS = 0xFFFFFFFF

# Not kernel constants: the flag words user space passes for a thread. THREAD_FLAGS is the
# least a thread needs; PTHREAD_FLAGS is what glibc's pthread_create passes.
THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
PTHREAD_FLAGS = THREAD_FLAGS | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID

# Every namespace flag, in the order create_new_namespaces() builds them.
CLONE_NS_FLAGS = (
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWNET | CLONE_NEWTIME
)

CLONE_ARGS_SIZE_VER0 = 64  # flags .. tls
CLONE_ARGS_SIZE_VER1 = 80  # + set_tid, set_tid_size
CLONE_ARGS_SIZE_VER2 = 88  # + cgroup

# struct clone_args: eleven u64 fields, in this order.
CLONE_ARGS_FIELDS = (
    "flags",
    "pidfd",
    "child_tid",
    "parent_tid",
    "exit_signal",
    "stack",
    "stack_size",
    "tls",
    "set_tid",
    "set_tid_size",
    "cgroup",
)

SCHED_NORMAL = 0
SCHED_FIFO = 1
SCHED_RR = 2
SCHED_BATCH = 3
SCHED_IDLE = 5
SCHED_DEADLINE = 6
SCHED_EXT = 7
SCHED_RESET_ON_FORK = 0x40000000

# struct sched_attr's sched_flags.
SCHED_FLAG_RESET_ON_FORK = 0x01
SCHED_FLAG_RECLAIM = 0x02
SCHED_FLAG_DL_OVERRUN = 0x04
SCHED_FLAG_KEEP_POLICY = 0x08
SCHED_FLAG_KEEP_PARAMS = 0x10
SCHED_FLAG_UTIL_CLAMP_MIN = 0x20
SCHED_FLAG_UTIL_CLAMP_MAX = 0x40
SCHED_FLAG_KEEP_ALL = SCHED_FLAG_KEEP_POLICY | SCHED_FLAG_KEEP_PARAMS
SCHED_FLAG_UTIL_CLAMP = SCHED_FLAG_UTIL_CLAMP_MIN | SCHED_FLAG_UTIL_CLAMP_MAX
SCHED_FLAG_ALL = (
    SCHED_FLAG_RESET_ON_FORK | SCHED_FLAG_RECLAIM | SCHED_FLAG_DL_OVERRUN | SCHED_FLAG_KEEP_ALL | SCHED_FLAG_UTIL_CLAMP
)

SCHED_ATTR_SIZE_VER0 = 48  # up to sched_period
SCHED_ATTR_SIZE_VER1 = 56  # + sched_util_min, sched_util_max
SCHED_ATTR_LAYOUT = "<IIQiIQQQII"  # struct sched_attr, field by field, as SchedAttr lists them
SCHED_ATTR_WIDTHS = tuple(struct.calcsize(code) for code in SCHED_ATTR_LAYOUT[1:])  # bytes per field


def pack_sched_attr(fields: tuple[int, ...]) -> bytes:
    """The struct's bytes from its field values, each cut to its C width (-1 is all ones)."""
    return b"".join(
        (value & (1 << 8 * width) - 1).to_bytes(width, "little")
        for value, width in zip(fields, SCHED_ATTR_WIDTHS, strict=True)
    )


class SchedAttr(NamedTuple):
    """struct sched_attr (uapi/linux/sched/types.h), in its field order."""

    size: int = SCHED_ATTR_SIZE_VER1
    sched_policy: int = SCHED_NORMAL
    sched_flags: int = 0
    sched_nice: int = 0
    sched_priority: int = 0
    sched_runtime: int = 0
    sched_deadline: int = 0
    sched_period: int = 0
    sched_util_min: int = 0
    sched_util_max: int = 0


# Names in the order strace prints them.
CLONE_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (CLONE_VM, "CLONE_VM"),
    (CLONE_FS, "CLONE_FS"),
    (CLONE_FILES, "CLONE_FILES"),
    (CLONE_SIGHAND, "CLONE_SIGHAND"),
    (CLONE_PIDFD, "CLONE_PIDFD"),
    (CLONE_PTRACE, "CLONE_PTRACE"),
    (CLONE_VFORK, "CLONE_VFORK"),
    (CLONE_PARENT, "CLONE_PARENT"),
    (CLONE_THREAD, "CLONE_THREAD"),
    (CLONE_NEWNS, "CLONE_NEWNS"),
    (CLONE_SYSVSEM, "CLONE_SYSVSEM"),
    (CLONE_SETTLS, "CLONE_SETTLS"),
    (CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"),
    (CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"),
    (CLONE_DETACHED, "CLONE_DETACHED"),
    (CLONE_UNTRACED, "CLONE_UNTRACED"),
    (CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"),
    (CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    (CLONE_NEWUTS, "CLONE_NEWUTS"),
    (CLONE_NEWIPC, "CLONE_NEWIPC"),
    (CLONE_NEWUSER, "CLONE_NEWUSER"),
    (CLONE_NEWPID, "CLONE_NEWPID"),
    (CLONE_NEWNET, "CLONE_NEWNET"),
    (CLONE_IO, "CLONE_IO"),
    (CLONE_CLEAR_SIGHAND, "CLONE_CLEAR_SIGHAND"),
    (CLONE_INTO_CGROUP, "CLONE_INTO_CGROUP"),
    (CLONE_NEWTIME, "CLONE_NEWTIME"),
)
