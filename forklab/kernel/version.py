"""Kernel versions as named behaviours.

Model code asks ``k.has(Behaviour.X)``; it never compares version numbers itself. Each
behaviour records the first mainline release that has it and, where the reference could only
bound it, how sure that attribution is. Only the profiles listed in ``PROFILES`` can be booted:
for them every behaviour in this table is implemented by the model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


def parse_version(text: str) -> tuple[int, int]:
    """``"6.18"`` -> ``(6, 18)``; ``"6.18.44"`` keeps the major and minor numbers."""
    parts = text.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"not a kernel version: {text!r} (expected something like 6.18)")
    return int(parts[0]), int(parts[1])


class Behaviour(enum.Enum):
    """A behaviour that some kernel versions have and others lack."""

    value: tuple[str, str, str]  # (first version, certainty, what changes)

    # Members are singletons: hashing by identity spares k.has() Enum's hash of the name, a
    # Python-level call on every lookup.
    __hash__ = object.__hash__

    DO_FORK_TLS = ("4.2", "range 3.19-4.2", "_do_fork(..., tls) and copy_thread_tls; do_fork a wrapper")
    CLONE3 = ("5.3", "verified", "the clone3 system call")
    CLONE3_SET_TID = ("5.5", "verified", "clone3 set_tid/set_tid_size (CLONE_ARGS_SIZE_VER1)")
    CLONE_CLEAR_SIGHAND = ("5.5", "verified", "clone3 CLONE_CLEAR_SIGHAND")
    CLONE_INTO_CGROUP = ("5.7", "verified", "clone3 CLONE_INTO_CGROUP (CLONE_ARGS_SIZE_VER2)")
    SET_TID_CHECKPOINT_RESTORE = ("5.9", "range 5.7-5.9", "set_tid allowed with CAP_CHECKPOINT_RESTORE")
    COPY_THREAD_TLS_FOLDED = ("5.9", "verified", "copy_thread_tls folded back into copy_thread")
    KERNEL_CLONE = ("5.10", "range 5.9-5.10", "_do_fork renamed kernel_clone")
    NPROC_IN_UCOUNTS = ("5.14", "unverified", "RLIMIT_NPROC counted in ucounts, checked after copy_creds")
    SCHED_CGROUP_FORK = ("5.17", "verified", "sched_cgroup_fork() after cgroup_can_fork()")
    # A 2026 fix (unshare_fs), in stable 6.18.y: the host 6.18.44 has it; older series unknown.
    UNSHARE_NEWNS_COPIES_FS = ("6.18", "host 6.18.44", "unshare(CLONE_NEWNS) always copies fs_struct")
    # A 2026 fix (CVE-2026-46333, mainline 7.1-rc4), in stable 6.18.y, 6.12.y and 6.6.y: the host
    # 6.18.44 has it; which releases of the older series do is not known here.
    PTRACE_EXIT_DUMPABLE = (
        "6.18",
        "host 6.18.44",
        "a task past exit_mm is as dumpable as its mm was; else ptrace needs CAP_SYS_PTRACE in the initial namespace",
    )
    DROP_SIGNALS_WHEN_DYING = ("5.17", "range 5.16-5.18", "a signal sent to a group already exiting is dropped")
    CLONE3_NEWTIME = ("6.3", "range 6.0-6.1", "clone3 accepts CLONE_NEWTIME")
    EEVDF = ("6.6", "verified", "EEVDF placement; sched_child_runs_first inert")
    PIDFD_THREAD = ("6.9", "range 6.8-6.12", "CLONE_PIDFD|CLONE_THREAD allowed (a thread pidfd)")
    PLACE_AT_ENQUEUE = ("6.12", "range 6.8-6.12", "a new task is placed at its first enqueue")
    SCHED_EXT_FORK = ("6.12", "verified", "sched_cgroup_fork() can fail (sched_ext)")
    SCHED_EXT_PRIORITY_RANGE = ("6.12", "host 6.18", "sched_get_priority_max/min answer 0 for SCHED_EXT")
    FAIR_CUSTOM_SLICE = ("6.12", "host 6.18", "sched_attr.sched_runtime sets and reports a fair task's slice")
    DL_SERVER = ("6.12", "host 6.18", "each CPU's fair server holds 5 % of it as deadline bandwidth from boot")
    BASE_SLICE_700US = ("6.15", "range 6.13-6.18", "sysctl_sched_base_slice 0.70 ms, not 0.75 ms")
    PER_NS_PID_MAX = ("6.14", "range 6.12-6.14", "each pid namespace has its own pid_max")
    FUTEX_PRIVATE_HASH = ("6.16", "unverified", "first thread allocates the process futex hash")
    EXIT_TRACE_GROUP_DEAD = ("6.16", "unverified", "sched_process_exit prints group_dead")
    PIDFD_OPEN_THREAD_ENOENT = (
        "6.16",
        "host 6.18.44",
        "pidfd_open: ENOENT for a thread without PIDFD_THREAD, ESRCH for a reaped task, not EINVAL",
    )
    PIDS_PEAK = ("6.1", "unverified", "cgroup v2 pids.peak")
    PIDS_EVENTS_HIERARCHICAL = (
        "6.12",
        "unverified",
        "pids.events counts refusals at the refusing level and above; pids.events.local",
    )

    @property
    def since(self) -> tuple[int, int]:
        return parse_version(self.value[0])

    @property
    def certainty(self) -> str:
        return self.value[1]

    @property
    def description(self) -> str:
        return self.value[2]


# Profiles that boot. Older kernels order copy_process differently (see the reference's §4);
# they are refused rather than approximated.
PROFILES = ("5.10", "5.15", "6.1", "6.6", "6.12", "6.18")
DEFAULT_VERSION = "6.18"


@dataclass(frozen=True)
class KernelVersion:
    """One booted profile: its number and the behaviours it has."""

    text: str
    number: tuple[int, int]
    behaviours: frozenset[Behaviour]

    @classmethod
    def of(cls, text: str) -> KernelVersion:
        number = parse_version(text)
        name = f"{number[0]}.{number[1]}"
        if name not in PROFILES:
            raise ValueError(
                f"kernel {name} is not modelled; profiles: {', '.join(PROFILES)} (default {DEFAULT_VERSION})"
            )
        return cls(name, number, frozenset(b for b in Behaviour if b.since <= number))

    def has(self, behaviour: Behaviour) -> bool:
        return behaviour in self.behaviours

    @property
    def uname_release(self) -> str:
        return f"{self.text}.0-forklab"
