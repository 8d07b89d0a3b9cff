"""The wire format as Python builds it, and puppet.c agreeing with it (no sandbox needed)."""

from __future__ import annotations

import re
import struct
from importlib import resources
from pathlib import Path

import pytest

from forklab.host import RESERVED_FDS
from forklab.host.build import host_available
from forklab.host.calls import CALLS, Shape
from forklab.host.calls import build as build_call
from forklab.host.protocol import BOOT_STEPS, CHAN_FD, FAULTS, MAX_DATA, NRELOC, REP, REQ, RESERVED_LO, Kind, Op

C_SOURCE = resources.files("forklab.host").joinpath("puppet.c").read_text()


def _defines(prefix: str) -> dict[str, int]:
    found = re.findall(rf"^#define {prefix}(\w+) (\d+)", C_SOURCE, re.M)
    return {name: int(value) for name, value in found}


def test_puppet_and_python_agree() -> None:
    assert _defines("OP_") == {op.name: op.value for op in Op}
    assert _defines("K_") == {kind.name: kind.value for kind in Kind}
    assert set(_defines("FAULT_").values()) == set(FAULTS)
    assert set(_defines("STEP_").values()) == set(BOOT_STEPS)
    plain = _defines("")
    assert (plain["CHAN_FD"], plain["RESERVED_LO"], plain["MAX_DATA"], plain["NRELOC"]) == (
        CHAN_FD,
        RESERVED_LO,
        MAX_DATA,
        NRELOC,
    )
    assert frozenset(range(32, 64)) == RESERVED_FDS
    assert (REQ.size, REP.size) == (104, 32)


def test_clone3_builds_clone_args_and_set_tid_in_the_payload() -> None:
    call = build_call("clone3", (), {"flags": 0x100, "exit_signal": 17, "set_tid": [7, 8]}, CHAN_FD)
    request = call.request
    assert call.shape is Shape.CLONE and request.op is Op.CLONE
    assert request.args == (0, 88) and request.in_mask == 1
    fields = struct.unpack_from("<11Q", request.payload)
    assert fields[0] == 0x100 and fields[4] == 17 and fields[9] == 2
    assert request.relocs == ((64, 1),)
    assert struct.unpack_from("<2i", request.payload, fields[8]) == (7, 8)


def test_execve_appends_the_channel_to_the_environment() -> None:
    request = build_call("execve", ("/bin/ls", ["ls", "-l"], ["A=1"]), {}, 61).request
    assert request.in_mask == 0b111 and len(request.relocs) == 2
    strings = request.payload.split(b"\0")
    assert b"A=1" in strings and strings.index(b"FORKLAB_CHAN=61") > strings.index(b"A=1")
    (argv_at, argc), (envp_at, envc) = request.relocs
    assert (argc, envc) == (2, 2) and request.args == (0, argv_at, envp_at)
    assert struct.unpack_from("<3Q", request.payload, argv_at)[2] == 0


def test_arguments_are_checked_before_anything_runs() -> None:
    with pytest.raises(TypeError):
        build_call("kill", (1,), {}, CHAN_FD)
    with pytest.raises(ValueError, match="64 bits"):
        build_call("kill", (1 << 64, 0), {}, CHAN_FD)
    with pytest.raises(ValueError, match="4096"):
        build_call("write", (1, b"x" * 5000), {}, CHAN_FD)
    assert {"fork", "vfork", "clone", "clone3", "clone3_raw", "execve", "read_file"} <= set(CALLS)


def test_unavailable_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    check = host_available.__wrapped__
    monkeypatch.setattr("sys.platform", "darwin")
    assert check() == (False, "needs Linux")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert check() == (False, "needs root")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert check()[1].startswith("needs x86-64")
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr("forklab.host.build.compiler", lambda: None)
    monkeypatch.setattr("forklab.host.build.binary_path", lambda: Path("/nonexistent/puppet"))
    assert check()[1].startswith("no C compiler")
