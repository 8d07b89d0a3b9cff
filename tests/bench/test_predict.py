"""Where a fork bomb stops, worked out by hand from the kernel's rules, then checked against the
predictor and against the model forking until it fails."""

from __future__ import annotations

import errno

import pytest

import forklab
from forklab.bench.bomb import limits_of
from forklab.bench.predict import Limits, Prediction, pids_left, predict


def fresh(pid_max: int = 32768, **limits: int) -> Limits:
    """The host bomb's start: pid 1 of a new pid namespace, the cursor just past it, threads-max
    far away unless given."""
    return Limits(pid_max, [1], 2, **{"threads_max": 1 << 20, "nr_threads": 0, **limits})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pid_max", "cursor", "used", "left"),
    [
        # 2..1023 in a fresh namespace.
        (1024, 2, [1], 1022),
        # After boot: 1, 2 (kthreadd) and 3 (the bomber) taken; 4..32767 left.
        (32768, 4, [1, 2, 3], 32764),
        # 601..999 ahead (399), then the wrap to 300: 300..600 less 500 and 600 (299).
        (1000, 601, [1, 2, 500, 600], 698),
        # Nothing free from 100 up and the cursor at or below 300: the wrap goes down to 1 (1..99).
        (400, 100, list(range(100, 400)), 99),
        # Free numbers below 300 behind the cursor are never handed out again: 5..999 only.
        (1000, 5, [1, 2, 4], 995),
        # A cursor past 300 with nothing ahead wraps to 300: 300..349 less 310 (49).
        (1000, 350, [310, *range(350, 1000)], 49),
    ],
)
def test_pids_left_by_hand(pid_max: int, cursor: int, used: list[int], left: int) -> None:
    assert pids_left(pid_max, cursor, used) == left


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (fresh(1024), Prediction(1022, "pid_max")),
        (fresh(threads_max=100, nr_threads=60), Prediction(40, "threads-max")),
        (fresh(nproc_limit=20, nproc=5), Prediction(15, "RLIMIT_NPROC")),
        (fresh(pids_max=10, pids_current=3), Prediction(7, "pids.max")),
        # A tie goes to the check that copy_process makes first.
        (fresh(1024, nproc_limit=1022), Prediction(1022, "RLIMIT_NPROC")),
        (fresh(1024, pids_max=1023, pids_current=1), Prediction(1022, "pid_max")),
        # Already over a limit: no fork succeeds.
        (fresh(threads_max=10, nr_threads=12), Prediction(0, "threads-max")),
    ],
)
def test_predict_by_hand(limits: Limits, expected: Prediction) -> None:
    assert predict(limits) == expected


def bomb(bomber: forklab.TaskHandle) -> tuple[int, OSError]:
    forks = 0
    while True:
        try:
            bomber.fork()
        except OSError as err:
            return forks, err
        forks += 1


def bomber_of(k: forklab.Kernel) -> forklab.TaskHandle:
    init = k.task(1)
    return k.task(init.fork())


def check_bomb(k: forklab.Kernel, bomber: forklab.TaskHandle, by_hand: int, check: str) -> None:
    prediction = predict(limits_of(k)) if check in ("pid_max", "threads-max") else None
    forks, err = bomb(bomber)
    assert forks == by_hand
    assert err.errno == errno.EAGAIN
    assert Prediction(by_hand, check).refusal in str(err)
    if prediction is not None:
        assert prediction == Prediction(by_hand, check)
    k.check()


def test_model_bomb_wraps_at_300() -> None:
    k = forklab.boot(trace=False)
    bomber = bomber_of(k)  # pid 3
    init = k.task(1)
    init.write_file("/proc/sys/kernel/pid_max", "400\n")
    init.write_file("/proc/sys/kernel/ns_last_pid", "350\n")
    # 351..399 ahead (49), then 300..350 (51).
    check_bomb(k, bomber, 100, "pid_max")


def test_model_bomb_stops_at_threads_max() -> None:
    k = forklab.boot(trace=False)
    bomber = bomber_of(k)
    k.task(1).write_file("/proc/sys/kernel/threads-max", f"{k.machine.nr_threads + 5}\n")
    check_bomb(k, bomber, 5, "threads-max")


def test_model_bomb_stops_at_rlimit_nproc() -> None:
    k = forklab.boot(trace=False)
    bomber = bomber_of(k)
    bomber.setrlimit(forklab.RLIMIT_NPROC, (10, 10))
    bomber.setresuid(1000, 1000, 1000)
    # The bomber is uid 1000's first process: 9 more fit under 10.
    assert predict(Limits(32768, [1, 2, 3], 4, 1 << 20, 0, nproc_limit=10, nproc=1)) == Prediction(9, "RLIMIT_NPROC")
    check_bomb(k, bomber, 9, "RLIMIT_NPROC")
