"""forklab diff against the host kernel: the built-in scenarios, a bounded random campaign,
and proof that the comparison can fail (a deliberately wrong model answer is caught and shrunk)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import forklab.kernel.sys as ksys
from forklab.diff.campaign import (
    Campaign,
    builtin_scenarios,
    random_jobs,
    run_campaign,
    run_job,
    scenario_jobs,
    shrink_result,
)
from forklab.kernel.machine import Machine
from forklab.kernel.task import Task
from tests.cli.conftest import run_forklab

pytestmark = pytest.mark.host

# The CI campaign: a few hundred random sequences, every run the same.
CI_SEQUENCES = 300
CI_SEED = 1


def explain_failures(campaign: Campaign) -> str:
    lines = []
    for result in campaign.results:
        if result.verdict in ("disagrees", "error"):
            lines.append(f"{result.name}: {result.error}")
            lines += [f"    {d.kind} {d.what}: model {d.model!r} host {d.host!r}" for d in result.disagreements[:5]]
    return "\n".join(lines)


def test_every_builtin_scenario_agrees() -> None:
    scenarios = builtin_scenarios()
    assert len(scenarios) >= 10
    campaign = run_campaign(scenario_jobs(scenarios))
    assert campaign.passed, explain_failures(campaign)
    assert campaign.steps > 200


def test_bounded_random_campaign_agrees() -> None:
    campaign = run_campaign(random_jobs(CI_SEQUENCES, CI_SEED), workers=2)
    assert len(campaign.results) == CI_SEQUENCES
    assert campaign.passed, explain_failures(campaign)
    assert campaign.count("agrees") > CI_SEQUENCES // 2  # most need no explanation at all
    assert campaign.steps > CI_SEQUENCES * 10


def test_a_wrong_model_answer_is_caught_and_shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """getppid that lies for tasks whose pid is above 3: the campaign must see it, and shrink a
    long sequence down to the few calls that show it."""
    honest = ksys.sys_getppid

    def lying(k: Machine, current: Task) -> int:
        ppid = honest(k, current)
        return ppid + 1 if current.pid > 3 else ppid

    monkeypatch.setattr(ksys, "sys_getppid", lying)
    campaign = run_campaign(random_jobs(60, 500, steps=25))  # in this process: the patch applies
    caught = [r for r in campaign.results if r.verdict == "disagrees"]
    assert caught, "the lie was not noticed"
    result = next(r for r in caught if any(".getppid()" in d.what for d in r.disagreements))
    shrunk = shrink_result(result)
    calls = [line.split("=")[-1].strip() for line in shrunk.text.splitlines()]
    assert shrunk.disagreements and len(calls) < result.steps
    assert len(calls) <= 4 and calls[-1].endswith(".getppid()"), shrunk.text
    assert "<- differs" in shrunk.python
    # The snippet runs as it is, on the (lying) model.
    exec(compile(shrunk.python, "<snippet>", "exec"), {})


def test_a_scenario_runs_alone_and_its_snippet_is_python(tmp_path: Path) -> None:
    scenario = tmp_path / "one.forklab"
    scenario.write_text("t1 = t0.fork()\nt1.getppid()\nt0.clone(CLONE_SIGHAND)\nt1.exit(3)\nt0.wait4(t1, 0)\n")
    result = run_job(scenario_jobs([scenario])[0])
    assert result.verdict == "agrees", result.differences
    assert [o[1] for o in result.outcomes] == ["2", "1", "-EINVAL", "gone", "(2, 768)"]


def forklab(*args: str) -> subprocess.CompletedProcess[str]:
    return run_forklab(*args, timeout=300)


def test_cli_json_and_exit_status(tmp_path: Path) -> None:
    scenario = tmp_path / "a.forklab"
    scenario.write_text("t1 = t0.fork()\nt1.getpid()\n")
    result = forklab("diff", str(scenario), "--random", "5", "--seed", "3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["sequences"] == 6 and report["disagree"] == 0 and report["errors"] == 0
    assert report["steps"] >= 2 and report["host"]


def test_cli_tables(tmp_path: Path) -> None:
    result = forklab("diff", "--random", "3", "--seed", "9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sequences" in result.stdout and "against this machine's Linux" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file or directory"),
        ("t1 = t0.fork(\n", "bad.forklab:1: not a call"),
        ("t1 = t0.fork()\nt2 = t9.fork()\n", "'t9' is not a task"),
    ],
)
def test_cli_bad_scenarios_are_one_line_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.forklab"
    if content is not None:
        path.write_text(content)
    result = forklab("diff", str(path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr + result.stdout
