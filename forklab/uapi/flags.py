"""Clone flag words as strace prints them, and back.

``decode_clone_flags(0x1200011)`` gives ``"CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"``;
``parse_clone_flags`` reads that text (or a number, or a mix) back into a flag word.
"""

from __future__ import annotations

from forklab.uapi.sched import CLONE_FLAG_NAMES, CSIGNAL
from forklab.uapi.signal import SIGNAL_NAMES, SIGRTMAX, SIGRTMIN, signal_name

_FLAG_BY_NAME = {name: bit for bit, name in CLONE_FLAG_NAMES}
_SIGNAL_BY_NAME = {name: number for number, name in SIGNAL_NAMES.items()}


class FlagSyntaxError(ValueError):
    """A flag word that is neither a number nor a |-separated list of known names."""


def flag_names(flags: int, *, with_signal: bool = True) -> list[str]:
    """The names of the set bits, strace's order; unknown bits as one hex number at the end.

    With ``with_signal`` the low byte is the exit signal (legacy clone's layout); without it
    (clone3, where the exit signal has its own field) the low byte holds flags only.
    """
    names: list[str] = []
    rest = flags
    for bit, name in CLONE_FLAG_NAMES:
        if with_signal and bit & CSIGNAL:
            continue
        if flags & bit:
            names.append(name)
            rest &= ~bit
    if with_signal:
        sig = rest & CSIGNAL
        rest &= ~CSIGNAL
        if sig:
            names.append(signal_name(sig))
    if rest:
        names.append(hex(rest))
    return names


def decode_clone_flags(flags: int, *, with_signal: bool = True) -> str:
    """``flag_names`` joined with ``|``; ``0`` for no flags."""
    return "|".join(flag_names(flags, with_signal=with_signal)) or "0"


def parse_signal(token: str) -> int:
    """``SIGCHLD``, ``CHLD``, ``SIGRTMIN+2`` or a number."""
    text = token.strip().upper()
    if not text.startswith("SIG") and text in {name[3:] for name in _SIGNAL_BY_NAME}:
        text = "SIG" + text
    if text in _SIGNAL_BY_NAME:
        return _SIGNAL_BY_NAME[text]
    if text.startswith("SIGRTMIN"):
        offset = text[len("SIGRTMIN") :]
        value = SIGRTMIN + (int(offset.lstrip("+")) if offset else 0)
        if value <= SIGRTMAX:
            return value
    try:
        return int(text, 0)
    except ValueError:
        raise FlagSyntaxError(f"unknown signal {token.strip()!r}") from None


def parse_clone_flags(text: str) -> int:
    """Read a flag word: names joined by ``|`` (strace style), numbers, or both.

    A signal name contributes its number to the low byte; ``CLONE_`` may be left off.
    """
    if not text.strip():
        raise FlagSyntaxError("empty flag word")
    word = 0
    for raw in text.split("|"):
        token = raw.strip()
        if not token:
            raise FlagSyntaxError(f"empty name in {text.strip()!r}")
        upper = token.upper()
        name = upper if upper.startswith("CLONE_") else "CLONE_" + upper
        if name in _FLAG_BY_NAME:
            word |= _FLAG_BY_NAME[name]
            continue
        try:
            word |= int(token, 0)
            continue
        except ValueError:
            pass
        if token[0].isdigit() or token[0] == "-":
            raise FlagSyntaxError(f"malformed number {token!r}")
        try:
            word |= parse_signal(token)
        except FlagSyntaxError:
            raise FlagSyntaxError(f"unknown clone flag {token!r}") from None
    return word
