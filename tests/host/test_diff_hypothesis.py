"""Sequences drawn by hypothesis, run on the model and the host; a disagreement shrinks the
hypothesis way (fewer, simpler choices)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from forklab.diff.campaign import Job, run_job, scenario_text
from forklab.diff.script import Scenario
from forklab.diff.strategies import sequences

pytestmark = pytest.mark.host


@settings(
    max_examples=int(os.environ.get("FORKLAB_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    # The same draws on every run: CI must not meet a new race the day it lands; the random
    # campaigns (forklab diff --random) are where new sequences are explored.
    derandomize=True,
)
@given(sequences(max_steps=20))
def test_drawn_sequences_agree(scenario: Scenario) -> None:
    result = run_job(Job("hypothesis sequence", scenario_text(scenario)))
    assert not result.error, result.error
    assert not result.disagreements, "\n".join(
        [
            scenario_text(scenario),
            *(f"{d.kind} {d.what}: model {d.model!r}, host {d.host!r}" for d in result.disagreements),
        ]
    )
