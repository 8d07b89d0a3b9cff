"""Clone flag words as strace prints them, and back."""

from __future__ import annotations

import pytest

from forklab.uapi.flags import FlagSyntaxError, decode_clone_flags, parse_clone_flags
from forklab.uapi.sched import CLONE_NEWTIME, CLONE_SIGHAND, CLONE_VM, PTHREAD_FLAGS
from forklab.uapi.signal import SIGCHLD


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("CLONE_VM|CLONE_SIGHAND|SIGCHLD", CLONE_VM | CLONE_SIGHAND | SIGCHLD),
        ("vm | sighand | CHLD", CLONE_VM | CLONE_SIGHAND | SIGCHLD),
        ("0x3d0f00", PTHREAD_FLAGS),
        ("CLONE_VM|0x800", CLONE_VM | CLONE_SIGHAND),
        ("SIGRTMIN+1", 33),  # the kernel's SIGRTMIN is 32 (glibc keeps two for itself)
    ],
)
def test_parse(text: str, word: int) -> None:
    assert parse_clone_flags(text) == word


def test_decode_round_trips() -> None:
    text = decode_clone_flags(PTHREAD_FLAGS | SIGCHLD)
    assert text.endswith("CLONE_CHILD_CLEARTID|SIGCHLD")
    assert parse_clone_flags(text) == PTHREAD_FLAGS | SIGCHLD
    assert decode_clone_flags(CLONE_NEWTIME, with_signal=False) == "CLONE_NEWTIME"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CLONE_BOGUS", "unknown clone flag 'CLONE_BOGUS'"),
        ("0xzz", "malformed number '0xzz'"),
        ("CLONE_VM|12q", "malformed number '12q'"),
        ("CLONE_VM||SIGCHLD", "empty name"),
        (" ", "empty flag word"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FlagSyntaxError, match=message):
        parse_clone_flags(text)
