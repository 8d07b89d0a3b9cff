"""The calls a puppet makes, by name: their arguments, how they travel, what they give back.

Each function takes the model's arguments for one system call and returns a ``Call``: the
request for the puppet, the shape of the answer to expect, the system calls it may sleep in
(asleep there means the call is pending) and how to turn the raw answer into Python values.
``ret`` is always the kernel's raw return; ``data`` the decoded output, when ``ret >= 0``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from forklab.host.errors import HostError
from forklab.host.protocol import CHAN_ENV, CHAN_FD, MAX_DATA, Op, Reply, Request
from forklab.uapi.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from forklab.uapi.prctl import PR_GET_NAME, PR_GET_PDEATHSIG, PR_SET_NAME
from forklab.uapi.sched import SCHED_ATTR_LAYOUT, SCHED_ATTR_SIZE_VER1, SchedAttr, pack_sched_attr
from forklab.uapi.unistd import SYSCALL_NUMBERS
from forklab.uapi.wait import WaitidInfo

# Numbers uapi/unistd.py does not list yet.
NR = SYSCALL_NUMBERS
U64 = (1 << 64) - 1
UTS_LEN = 65


class Shape(Enum):
    PLAIN = "plain"  # one reply
    CLONE = "clone"  # a reply, and the child's HELLO when one was made
    EXIT = "exit"  # no reply: the task is gone
    EXECVE = "execve"  # a reply from the old image (failure) or from the new one (success)


@dataclass(frozen=True)
class Call:
    name: str
    request: Request
    shape: Shape = Shape.PLAIN
    blocks: frozenset[int] = frozenset()
    decode: Callable[[Reply, bytes], Any] | None = None
    # Waits only interruptibly (S) for others; asleep in D it is busy, not pending (a cgroup.procs
    # write waits for an RCU grace period).
    waits_interruptibly: bool = False


def _u64(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer argument, got {value!r}")
    if not -(1 << 63) <= value <= U64:
        raise ValueError(f"argument {value} does not fit in 64 bits")
    return value & U64


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _sized(n: int, what: str) -> int:
    if not 0 <= n <= MAX_DATA:
        raise ValueError(f"{what} must be between 0 and {MAX_DATA} bytes per call, not {n}")
    return n


@dataclass
class _Builder:
    """One request being built: arguments, the payload they point into, the output they point into."""

    args: list[int] = field(default_factory=list)
    in_mask: int = 0
    out_mask: int = 0
    out_len: int = 0
    payload: bytearray = field(default_factory=bytearray)
    relocs: list[tuple[int, int]] = field(default_factory=list)

    def num(self, *values: int) -> _Builder:
        self.args.extend(_u64(v) for v in values)
        return self

    def put(self, data: bytes) -> int:
        """Append to the payload at an 8-byte boundary; the offset it landed at."""
        self.payload.extend(bytes(-len(self.payload) % 8))
        offset = len(self.payload)
        self.payload.extend(data)
        return offset

    def at(self, offset: int) -> _Builder:
        """An argument pointing at ``offset`` in the payload."""
        self.in_mask |= 1 << len(self.args)
        self.args.append(offset)
        return self

    def ptr(self, data: bytes) -> _Builder:
        return self.at(self.put(data))

    def cstr(self, text: bytes | str) -> _Builder:
        return self.ptr(_bytes(text) + b"\0")

    def out(self, size: int) -> _Builder:
        """An argument pointing at ``size`` bytes the puppet sends back."""
        self.out_mask |= 1 << len(self.args)
        self.args.append(self.out_len)
        self.out_len += size
        return self

    def request(self, op: Op = Op.SYSCALL, nr: int = 0) -> Request:
        if len(self.payload) > MAX_DATA or self.out_len > MAX_DATA:
            raise ValueError(f"arguments too large: at most {MAX_DATA} bytes travel per call")
        return Request(
            op,
            nr,
            tuple(self.args),
            self.in_mask,
            self.out_mask,
            self.out_len,
            bytes(self.payload),
            tuple(self.relocs),
        )


CALLS: dict[str, Callable[..., Call]] = {}


def _call(fn: Callable[..., Call]) -> Callable[..., Call]:
    """Register under the function's name, less a trailing ``_`` (``open_`` is ``open``)."""
    CALLS[fn.__name__.rstrip("_")] = fn
    return fn


def _sys(
    name: str,
    b: _Builder,
    *,
    blocks: bool = False,
    decode: Callable[[Reply, bytes], Any] | None = None,
    shape: Shape = Shape.PLAIN,
    syscall: str | None = None,
) -> Call:
    nr = NR[syscall or name]
    return Call(name, b.request(nr=nr), shape, frozenset({nr}) if blocks else frozenset(), decode)


def _plain(name: str, *args: int) -> Call:
    return _sys(name, _Builder().num(*args))


def _clone(name: str, nr: int, b: _Builder) -> Call:
    return Call(name, b.request(Op.CLONE, nr), Shape.CLONE, frozenset({nr}))


def _unpack(fmt: str) -> Callable[[Reply, bytes], Any]:
    layout = struct.Struct(fmt)
    return lambda reply, data: layout.unpack_from(data)


def _first(fmt: str) -> Callable[[Reply, bytes], Any]:
    layout = struct.Struct(fmt)
    return lambda reply, data: layout.unpack_from(data)[0]


def _name(reply: Reply, data: bytes) -> str:
    return data.split(b"\0")[0].decode(errors="replace")


def _text(reply: Reply, data: bytes) -> str:
    return data[: reply.ret].decode(errors="replace")


# ---- process creation and exit ------------------------------------------------------------------


@_call
def fork() -> Call:
    return _clone("fork", NR["fork"], _Builder())


@_call
def vfork() -> Call:
    return _clone("vfork", NR["vfork"], _Builder())


@_call
def clone(flags: int, stack: int = 0, parent_tid: int = 0, child_tid: int = 0, tls: int = 0) -> Call:
    return _clone("clone", NR["clone"], _Builder().num(flags, stack, parent_tid, child_tid, tls))


@_call
def clone3(
    flags: int = 0,
    pidfd: int = 0,
    child_tid: int = 0,
    parent_tid: int = 0,
    exit_signal: int = 0,
    stack: int = 0,
    stack_size: int = 0,
    tls: int = 0,
    set_tid: Iterable[int] = (),
    cgroup: int = 0,
) -> Call:
    """struct clone_args (88 bytes) and the set_tid array, both in the puppet's memory."""
    tids = [_u64(t) & 0xFFFFFFFF for t in set_tid]
    head = [flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, 0, len(tids), cgroup]
    b = _Builder()
    args = b.put(struct.pack("<11Q", *(_u64(v) for v in head)))
    if tids:
        array = b.put(struct.pack(f"<{len(tids)}I", *tids))
        struct.pack_into("<Q", b.payload, args + 64, array)
        b.relocs.append((args + 64, 1))
    return _clone("clone3", NR["clone3"], b.at(args).num(88))


@_call
def clone3_raw(addr: int, size: int) -> Call:
    """clone3 on a struct already in memory: for the size and EFAULT checks."""
    return _clone("clone3_raw", NR["clone3"], _Builder().num(addr, size))


@_call
def exit_(status: int = 0) -> Call:
    return _sys("exit", _Builder().num(status), shape=Shape.EXIT, blocks=True)


@_call
def exit_group(status: int = 0) -> Call:
    return _sys("exit_group", _Builder().num(status), shape=Shape.EXIT, blocks=True)


@_call
def wait4(pid: int = -1, options: int = 0) -> Call:
    """data: (pid, status)."""
    b = _Builder().num(pid).out(4).num(options, 0)
    return _sys("wait4", b, blocks=True, decode=lambda reply, data: (reply.ret, struct.unpack_from("<i", data)[0]))


@_call
def waitid(idtype: int, id: int, options: int) -> Call:
    """data: WaitidInfo from the siginfo_t the kernel filled."""
    b = _Builder().num(idtype, id).out(128).num(options, 0)

    def decode(reply: Reply, data: bytes) -> WaitidInfo:
        signo, _, code, _, pid, uid, status = struct.unpack_from("<iiiiiIi", data)
        return WaitidInfo(pid, uid, signo, status, code)

    return _sys("waitid", b, blocks=True, decode=decode)


@_call
def unshare(flags: int) -> Call:
    return _plain("unshare", flags)


# ---- identity and credentials -------------------------------------------------------------------


@_call
def getpid() -> Call:
    return _plain("getpid")


@_call
def gettid() -> Call:
    return _plain("gettid")


@_call
def getppid() -> Call:
    return _plain("getppid")


@_call
def getuid() -> Call:
    return _plain("getuid")


@_call
def geteuid() -> Call:
    return _plain("geteuid")


@_call
def getgid() -> Call:
    return _plain("getgid")


@_call
def getegid() -> Call:
    return _plain("getegid")


@_call
def getresuid() -> Call:
    """data: (ruid, euid, suid)."""
    return _sys("getresuid", _Builder().out(4).out(4).out(4), decode=_unpack("<III"))


@_call
def getresgid() -> Call:
    """data: (rgid, egid, sgid)."""
    return _sys("getresgid", _Builder().out(4).out(4).out(4), decode=_unpack("<III"))


@_call
def setresuid(ruid: int, euid: int, suid: int) -> Call:
    return _plain("setresuid", ruid, euid, suid)


@_call
def setresgid(rgid: int, egid: int, sgid: int) -> Call:
    return _plain("setresgid", rgid, egid, sgid)


@_call
def setgroups(groups: Iterable[int]) -> Call:
    gids = [_u64(g) & 0xFFFFFFFF for g in groups]
    return _sys("setgroups", _Builder().num(len(gids)).ptr(struct.pack(f"<{len(gids)}I", *gids)))


@_call
def getrlimit(resource: int) -> Call:
    """prlimit64 on itself, as the C library does; data: (soft, hard)."""
    b = _Builder().num(0, resource, 0).out(16)
    return _sys("getrlimit", b, decode=_unpack("<QQ"), syscall="prlimit64")


@_call
def setrlimit(resource: int, limits: tuple[int, int]) -> Call:
    """As the model's API takes it: (resource, (soft, hard))."""
    soft, hard = limits
    limits_raw = struct.pack("<QQ", _u64(soft), _u64(hard))
    return _sys("setrlimit", _Builder().num(0, resource).ptr(limits_raw).num(0), syscall="prlimit64")


@_call
def setpgid(pid: int, pgid: int) -> Call:
    return _plain("setpgid", pid, pgid)


@_call
def getpgid(pid: int) -> Call:
    return _plain("getpgid", pid)


@_call
def setsid() -> Call:
    return _plain("setsid")


@_call
def getsid(pid: int) -> Call:
    return _plain("getsid", pid)


@_call
def prctl(option: int, arg2: int | str = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> Call:
    """PR_SET_NAME takes a string; PR_GET_NAME gives one (data); PR_GET_PDEATHSIG gives an int (data)."""
    b = _Builder().num(option)
    decode: Callable[[Reply, bytes], Any] | None = None
    if option == PR_SET_NAME and isinstance(arg2, str):
        b.cstr(arg2)
    elif option == PR_GET_NAME:
        b.out(16)
        decode = _name
    elif option == PR_GET_PDEATHSIG:
        b.out(4)
        decode = _first("<i")
    else:
        b.num(_u64(arg2))
    return _sys("prctl", b.num(arg3, arg4, arg5), decode=decode)


# ---- scheduling policy and nice value ------------------------------------------------------------


@_call
def sched_setattr(
    pid: int,
    policy: int,
    flags: int = 0,
    nice: int = 0,
    priority: int = 0,
    runtime: int = 0,
    deadline: int = 0,
    period: int = 0,
    util_min: int = 0,
    util_max: int = 0,
    size: int = SCHED_ATTR_SIZE_VER1,
) -> Call:
    """struct sched_attr as the model's API takes it; zeros follow it up to ``size`` bytes."""
    raw = pack_sched_attr((size, policy, flags, nice, priority, runtime, deadline, period, util_min, util_max))
    raw = raw.ljust(min(size & 0xFFFFFFFF, MAX_DATA), b"\0")
    return _sys("sched_setattr", _Builder().num(pid).ptr(raw).num(0))


@_call
def sched_getattr(pid: int = 0, size: int = SCHED_ATTR_SIZE_VER1) -> Call:
    """data: SchedAttr, from the bytes the kernel wrote (at most ``size``)."""
    written = min(size, SCHED_ATTR_SIZE_VER1)

    def decode(reply: Reply, data: bytes) -> SchedAttr:
        return SchedAttr._make(struct.unpack(SCHED_ATTR_LAYOUT, data[:written].ljust(SCHED_ATTR_SIZE_VER1, b"\0")))

    b = _Builder().num(pid).out(max(0, min(size, MAX_DATA))).num(size, 0)
    return _sys("sched_getattr", b, decode=decode)


@_call
def sched_setscheduler(pid: int, policy: int, priority: int = 0) -> Call:
    return _sys("sched_setscheduler", _Builder().num(pid, policy).ptr(struct.pack("<I", priority & 0xFFFFFFFF)))


@_call
def sched_getscheduler(pid: int = 0) -> Call:
    return _plain("sched_getscheduler", pid)


@_call
def sched_setparam(pid: int, priority: int) -> Call:
    return _sys("sched_setparam", _Builder().num(pid).ptr(struct.pack("<I", priority & 0xFFFFFFFF)))


@_call
def sched_getparam(pid: int = 0) -> Call:
    """data: the real-time priority."""
    return _sys("sched_getparam", _Builder().num(pid).out(4), decode=_first("<i"))


@_call
def sched_get_priority_max(policy: int) -> Call:
    return _plain("sched_get_priority_max", policy)


@_call
def sched_get_priority_min(policy: int) -> Call:
    return _plain("sched_get_priority_min", policy)


@_call
def setpriority(which: int, who: int, prio: int) -> Call:
    return _plain("setpriority", which, who, prio)


@_call
def getpriority(which: int, who: int = 0) -> Call:
    """data: the nice value (the raw call returns 20 - nice)."""
    return _sys("getpriority", _Builder().num(which, who), decode=lambda reply, data: 20 - reply.ret)


# ---- files --------------------------------------------------------------------------------------


@_call
def open_(path: str, flags: int = 0, mode: int = 0o644) -> Call:
    return _sys("open", _Builder().cstr(path).num(flags, mode), blocks=True)


@_call
def close(fd: int) -> Call:
    return _plain("close", fd)


@_call
def dup(fd: int) -> Call:
    return _plain("dup", fd)


@_call
def fcntl(fd: int, cmd: int, arg: int = 0) -> Call:
    return _plain("fcntl", fd, cmd, arg)


@_call
def read(fd: int, n: int) -> Call:
    """data: the bytes read."""
    size = _sized(n, "a read")
    return _sys("read", _Builder().num(fd).out(size).num(size), blocks=True, decode=lambda r, d: d[: r.ret])


@_call
def write(fd: int, data: bytes | str) -> Call:
    raw = _bytes(data)
    _sized(len(raw), "a write")
    call = _sys("write", _Builder().num(fd).ptr(raw).num(len(raw)), blocks=True)
    return replace(call, waits_interruptibly=True)


@_call
def lseek(fd: int, offset: int, whence: int) -> Call:
    return _plain("lseek", fd, offset, whence)


@_call
def pipe() -> Call:
    """data: (read fd, write fd)."""
    return _sys("pipe", _Builder().out(8), decode=_unpack("<ii"))


@_call
def chdir(path: str) -> Call:
    return _sys("chdir", _Builder().cstr(path))


@_call
def getcwd() -> Call:
    """data: the path; ret counts its terminating NUL, as the raw call does."""
    b = _Builder().out(MAX_DATA).num(MAX_DATA)
    return _sys("getcwd", b, decode=lambda r, d: d[: r.ret - 1].decode(errors="replace"))


@_call
def umask(mask: int) -> Call:
    return _plain("umask", mask)


@_call
def readlink(path: str) -> Call:
    """data: the link's text."""
    return _sys("readlink", _Builder().cstr(path).out(MAX_DATA).num(MAX_DATA), decode=_text)


@_call
def mount(source: str, target: str, fstype: str, flags: int = 0) -> Call:
    return _sys("mount", _Builder().cstr(source).cstr(target).cstr(fstype).num(flags, 0))


@_call
def mkdir(path: str, mode: int = 0o755) -> Call:
    return _sys("mkdir", _Builder().cstr(path).num(mode))


@_call
def rmdir(path: str) -> Call:
    return _sys("rmdir", _Builder().cstr(path))


@_call
def read_file(path: str) -> Call:
    """open, read to the end, close, as one logical call; data: the bytes, ret: how many."""
    request = Request(Op.READ_FILE, payload=_bytes(path) + b"\0")
    return Call("read_file", request, blocks=frozenset({NR["open"], NR["read"]}), decode=lambda r, d: d)


@_call
def write_file(path: str, data: bytes | str | int) -> Call:
    """open (O_WRONLY|O_CREAT|O_TRUNC, 0644), write all, close; ret: bytes written. A number goes
    as its decimal text."""
    head = _bytes(path) + b"\0"
    raw = _bytes(str(data) if isinstance(data, int) else data)
    _sized(len(head) + len(raw), "a path and its data")
    request = Request(Op.WRITE_FILE, args=(len(head),), payload=head + raw)
    return Call("write_file", request, blocks=frozenset({NR["open"], NR["write"]}), waits_interruptibly=True)


def _string_table(b: _Builder, strings: Iterable[str]) -> int:
    """The strings and a NULL-terminated array of pointers to them; the array's offset."""
    offsets = [b.put(_bytes(s) + b"\0") for s in strings]
    table = b.put(struct.pack(f"<{len(offsets) + 1}Q", *offsets, 0))
    b.relocs.append((table, len(offsets)))
    return table


@_call
def execve(path: str, argv: Iterable[str] | None = (), envp: Iterable[str] = (), *, chan: int = CHAN_FD) -> Call:
    """argv None passes NULL. The puppet's channel number rides in the environment, so the
    new image finds it."""
    b = _Builder()
    path_at = b.put(_bytes(path) + b"\0")
    argv_at = None if argv is None else _string_table(b, argv)
    envp_at = _string_table(b, [*envp, f"{CHAN_ENV}={chan}"])
    b.at(path_at)
    if argv_at is None:
        b.num(0)
    else:
        b.at(argv_at)
    return _sys("execve", b.at(envp_at), shape=Shape.EXECVE)


# ---- signals ------------------------------------------------------------------------------------


@_call
def sigaction(sig: int, handler: int | None, flags: int = 0, mask: int = 0) -> Call:
    """handler 0 is SIG_DFL, 1 SIG_IGN, any other number a token for "a user handler";
    None only asks. data: the old handler, as such a token."""
    query = handler is None
    request = Request(Op.SIGACTION, args=(_u64(sig), _u64(handler or 0), _u64(flags), int(query), _u64(mask)))
    return Call("sigaction", request, decode=lambda reply, data: reply.v0)


@_call
def sigprocmask(how: int, sigset: int | None) -> Call:
    """data: the old mask; a sigset of None only asks."""
    b = _Builder().num(how)
    if sigset is None:
        b.num(0)
    else:
        b.ptr(struct.pack("<Q", _u64(sigset)))
    return _sys("sigprocmask", b.out(8).num(8), decode=_first("<Q"), syscall="rt_sigprocmask")


@_call
def kill(pid: int, sig: int) -> Call:
    return _plain("kill", pid, sig)


@_call
def tgkill(tgid: int, tid: int, sig: int) -> Call:
    return _plain("tgkill", tgid, tid, sig)


@_call
def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> Call:
    """The raw request: PTRACE_GETEVENTMSG writes to ``data``, an address in the caller's memory."""
    return _plain("ptrace", request, pid, addr, data)


@_call
def pidfd_open(pid: int, flags: int = 0) -> Call:
    return _plain("pidfd_open", pid, flags)


@_call
def pidfd_send_signal(pidfd: int, sig: int, flags: int = 0) -> Call:
    return _plain("pidfd_send_signal", pidfd, sig, 0, flags)


# ---- uts ----------------------------------------------------------------------------------------


@_call
def sethostname(name: str) -> Call:
    raw = _bytes(name)
    return _sys("sethostname", _Builder().ptr(raw).num(len(raw)))


@_call
def uname() -> Call:
    """data: (sysname, nodename, release, version, machine)."""

    def decode(reply: Reply, data: bytes) -> tuple[str, ...]:
        fields = [data[i * UTS_LEN : (i + 1) * UTS_LEN].split(b"\0")[0].decode() for i in range(5)]
        return tuple(fields)

    return _sys("uname", _Builder().out(6 * UTS_LEN), decode=decode)


# ---- memory -------------------------------------------------------------------------------------


@_call
def mmap(
    length: int, prot: int = PROT_READ | PROT_WRITE, flags: int = MAP_PRIVATE | MAP_ANONYMOUS, addr: int = 0
) -> Call:
    return _plain("mmap", addr, length, prot, flags, -1, 0)


@_call
def munmap(addr: int, length: int) -> Call:
    return _plain("munmap", addr, length)


@_call
def madvise(addr: int, length: int, advice: int) -> Call:
    return _plain("madvise", addr, length, advice)


@_call
def peek(addr: int, n: int) -> Call:
    """Read the task's memory without faulting (process_vm_readv on itself); data: the bytes."""
    request = Request(Op.PEEK, args=(_u64(addr), _sized(n, "a peek")))
    return Call("peek", request, decode=lambda r, d: d)


@_call
def poke(addr: int, data: bytes) -> Call:
    """Write the task's memory without faulting (process_vm_writev on itself); ret: bytes written."""
    raw = bytes(data)
    _sized(len(raw), "a poke")
    return Call("poke", Request(Op.POKE, args=(_u64(addr),), payload=raw))


def build(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], chan: int) -> Call:
    """The Call for ``name(*args, **kwargs)`` made by the task whose channel is ``chan``."""
    maker = CALLS.get(name)
    if maker is None:
        raise HostError(f"unknown call {name!r}; the host layer knows: {', '.join(sorted(CALLS))}")
    if name == "execve":
        kwargs = {**kwargs, "chan": chan}
    return maker(*args, **kwargs)
