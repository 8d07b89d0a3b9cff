"""The puppet's wire format, mirrored from puppet.c.

A request is one SOCK_SEQPACKET message: a fixed header then a payload. The header names an
operation; for ``Op.SYSCALL`` it is a system call number and six arguments, each either an
integer, an offset into the payload (``in_mask``) or an offset into an output buffer the
puppet sends back (``out_mask``). ``relocs`` lists runs of u64 payload offsets inside the
payload that become pointers too (argv arrays, ``clone_args.set_tid``). So the puppet stays a
small interpreter and each call's shape is decided here.

A reply is a header (raw return value, kind, two values) then data; a child's ``HELLO``
carries the driver's end of its channel as SCM_RIGHTS.

File descriptors: a puppet's channel and the fds it makes for a moment during a clone live
in ``RESERVED_FDS`` (32..63), highest free first; the sandbox's pid 1 has 63. Tested
sequences keep to fds below 32, so the fd table stays at 64 entries (``FDSize: 64``).
After execve a puppet finds its channel in the environment variable ``FORKLAB_CHAN``,
which the host layer appends to every execve's envp.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

CHAN_FD = 63
RESERVED_LO = 32
RESERVED_FDS = frozenset(range(RESERVED_LO, CHAN_FD + 1))
MAX_DATA = 4096
CHAN_ENV = "FORKLAB_CHAN"
NRELOC = 4

REQ = struct.Struct("<II6QIIII4I4I")
REP = struct.Struct("<qII2Q")


class Op(IntEnum):
    SYSCALL = 1
    CLONE = 2
    SIGACTION = 3
    PEEK = 4
    POKE = 5
    READ_FILE = 6
    WRITE_FILE = 7
    GO = 8


class Kind(IntEnum):
    RESULT = 1
    HELLO = 2
    CHUNK = 3
    EXEC = 4
    BOOT = 5
    BOOTERR = 6
    FAULT = 7


FAULTS = {
    1: "the puppet could not parse the request",
    2: "no free pool stack for a CLONE_VM child given no stack (at most 32 such children per address space)",
    3: "the puppet could not make the child's control channel (fds 32..63 must stay free and "
    "RLIMIT_NOFILE at least 64)",
    4: "more than 1024 distinct handler tokens in one address space",
}

BOOT_STEPS = {
    1: "joining the pids cgroup",
    2: "cloning the sandbox's pid 1 into new namespaces",
    3: "waiting for the uid and gid maps",
    4: "making mounts private",
    5: "mounting the root tmpfs",
    6: "populating the root file system",
    7: "binding /dev/null",
    8: "mounting /tmp",
    9: "mounting /proc",
    10: "pivot_root",
    11: "setting the host name",
    12: "opening /dev/null as fds 0-2",
    13: "executing /sbin/init",
    14: "becoming the namespace's root (setgroups, setresgid, setresuid)",
}


@dataclass(frozen=True)
class Request:
    op: Op
    nr: int = 0
    args: tuple[int, ...] = ()
    in_mask: int = 0
    out_mask: int = 0
    out_len: int = 0
    payload: bytes = b""
    relocs: tuple[tuple[int, int], ...] = ()

    def pack(self) -> bytes:
        args = (*self.args, *(0,) * (6 - len(self.args)))
        offs = [off for off, _ in self.relocs] + [0] * (NRELOC - len(self.relocs))
        counts = [cnt for _, cnt in self.relocs] + [0] * (NRELOC - len(self.relocs))
        head = REQ.pack(
            self.op,
            self.nr,
            *args,
            self.in_mask,
            self.out_mask,
            self.out_len,
            len(self.payload),
            *offs,
            *counts,
        )
        return head + self.payload


@dataclass(frozen=True)
class Reply:
    ret: int
    kind: Kind
    v0: int
    v1: int
    data: bytes

    @classmethod
    def unpack(cls, message: bytes) -> Reply:
        ret, kind, length, v0, v1 = REP.unpack_from(message)
        return cls(ret, Kind(kind), v0, v1, message[REP.size : REP.size + length])


GO = Request(Op.GO).pack()
