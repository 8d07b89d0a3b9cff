"""forklab bench, run as a user runs it: through the console script. Figures are printed, never
asserted against a clock; only what is exact (the bomb's count) is checked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import run_forklab as forklab


def test_quick_bench_smoke(tmp_path: Path) -> None:
    plot = tmp_path / "fork-cost.png"
    result = forklab("bench", "--quick", "--json", "--png", str(plot), timeout=900)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    whats = {row["what"] for row in report["rows"]}
    assert "fork + exit + wait" in whats and "bytes per live forked process" in whats
    bombs = [t for t in report["targets"] if t["what"].startswith("bomb at pid_max")]
    assert bombs and all(t["met"] for t in bombs), bombs
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_model_alone_as_markdown() -> None:
    result = forklab("bench", "--quick", "--no-host", "--only", "footprint", "--markdown")
    assert result.returncode == 0, result.stderr
    assert "| bytes per live forked process |" in result.stdout


def test_unknown_section_is_a_one_line_error() -> None:
    result = forklab("bench", "--only", "cycles,nonsense")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "choose from cycles, mapped, footprint, bomb, diff" in result.stderr


def test_plot_into_a_missing_directory_is_refused_before_measuring(tmp_path: Path) -> None:
    result = forklab("bench", "--quick", "--no-host", "--png", str(tmp_path / "nowhere" / "plot.png"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no directory" in result.stderr
