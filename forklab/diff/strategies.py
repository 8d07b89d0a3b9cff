"""Hypothesis strategies for sequences (needs hypothesis: the ``test`` extra).

The random generator's choices come from hypothesis's draws, so a failing sequence shrinks
the hypothesis way: the choices themselves get smaller (fewer steps, earlier alternatives),
and every shrunk sequence is still one the model can play.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hypothesis import strategies as st

from forklab.diff.generate import play
from forklab.diff.script import Scenario
from forklab.kernel.version import DEFAULT_VERSION

T = TypeVar("T")


class Draws:
    """The subset of random.Random the generator uses, answered by hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def random(self) -> float:
        return self.data.draw(st.integers(0, 99)) / 100

    def randint(self, a: int, b: int) -> int:
        return self.data.draw(st.integers(a, b))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.data.draw(st.integers(0, len(seq) - 1))]

    def choices(self, population: Sequence[T], weights: Sequence[float]) -> list[T]:
        # Shrinks toward the first (the most common) alternatives; the weights only order them.
        ranked = sorted(range(len(population)), key=lambda index: -weights[index])
        return [population[ranked[self.data.draw(st.integers(0, len(ranked) - 1))]]]

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        pool = list(population)
        return [pool.pop(self.data.draw(st.integers(0, len(pool) - 1))) for _ in range(k)]


@st.composite
def sequences(draw: st.DrawFn, max_steps: int = 20, version: str = DEFAULT_VERSION) -> Scenario:
    """A sequence of up to ``max_steps`` calls that the model can play."""
    steps = draw(st.integers(1, max_steps))
    return play(Draws(draw(st.data())), steps, version, "hypothesis sequence")
