"""The benchmark suite's verdicts: a ratio is the median of per-round ratios, its spread is
printed, and rounds that disagree by more than 30% make it UNSTABLE, never PASS or MISS."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITES
from benchmarks.common import (
    Measurement,
    Result,
    at_least,
    at_most,
    print_table,
    round_ratios,
    time_ratios,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    # Each side alone moves 4x between rounds; the per-round ratios hold still.
    measured = Measurement("retire", 100, round_seconds=[1.0, 4.0, 2.0])
    baseline = Measurement("plain", 100, round_seconds=[0.5, 2.0, 1.0])
    ratios = round_ratios(measured, baseline)
    assert ratios == pytest.approx([0.5, 0.5, 0.5])
    result = Result("retire", "postgres", measured.median_rate, baseline.median_rate, "ops/s",
                    at_least(0.4), round_ratios=ratios)
    assert result.ratio == pytest.approx(0.5) and result.spread == pytest.approx(0.0)
    assert result.status == "PASS"
    assert time_ratios(measured, baseline) == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.parametrize(("ratios", "target", "status"), [
    ([0.31, 0.33, 0.35], at_least(0.3), "PASS"),      # spread 12%
    ([0.25, 0.27, 0.28], at_least(0.3), "MISS"),      # spread 11%
    ([0.2, 0.5, 0.3], at_least(0.3), "UNSTABLE"),     # spread 100%: neither PASS nor MISS
    ([1.0, 1.29, 1.1], at_most(1.2), "PASS"),         # spread 26%
    ([1.0, 1.4, 1.1], at_most(1.2), "UNSTABLE"),      # spread 36%
    ([0.2, 0.5, 0.3], None, "INFO"),                  # a report, not a target
])
def test_verdicts(ratios: list[float], target: object, status: str) -> None:
    result = Result("figure", "postgres", 1.0, 1.0, "x", target,  # type: ignore[arg-type]
                    round_ratios=ratios)
    assert result.status == status
    out = io.StringIO()
    print_table([result], out=out)
    text = out.getvalue()
    assert f"{result.spread:.0%}" in text and status in text
    assert "per-round ratios " + ", ".join(f"{x:.3g}" for x in ratios) in text


def test_help_lists_every_suite() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in SUITES:
        assert (ROOT / "benchmarks" / f"{name}.py").exists(), name
        assert f"  {name.removesuffix('_bench')} " in done.stdout
    wrong = subprocess.run([sys.executable, "-m", "benchmarks", "nonsense"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "no suite 'nonsense'" in wrong.stderr
