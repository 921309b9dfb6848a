"""Regression guard (slow tier): re-run each experiment's cpu preset with one seed (seed offset 0) and check that
every claim's verdict is the one recorded in docs/reproductions.md ("Regression guard" table, seed-0 verdicts).

Run with ``python -m pytest -q -m slow tests/experiments/test_regression_guard.py`` (tens of minutes per
experiment on 2 CPU cores). An experiment with no recorded verdicts is skipped with the command that records them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pgdat.experiments import EXPERIMENTS
from pgdat.experiments.claims import VERDICTS
from pgdat.experiments.runner import run_experiment

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reproductions.md"
ROW = re.compile(r"^\|\s*`?([\w-]+)`?\s*\|\s*`?([\w-]+)`?\s*\|\s*(shown|not shown|inconclusive|not measured)\s*\|")


def recorded_verdicts(text: str) -> dict[str, dict[str, str]]:
    """experiment -> claim -> seed-0 verdict, from the "Regression guard" section's table."""
    section = text.split("## Regression guard", 1)[1] if "## Regression guard" in text else ""
    out: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = m.group(3)
    return out


def test_recorded_verdicts_parse_and_name_real_claims():
    recorded = recorded_verdicts(DOCS.read_text())
    for exp, claims in recorded.items():
        assert exp in EXPERIMENTS, exp
        assert set(claims) <= {c.name for c in EXPERIMENTS[exp].claims}, exp
        assert set(claims.values()) <= set(VERDICTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["co-features", "criticality", "deat", "induced", "memorization", "ntk", "reat",
                                  "robust-overfitting"])
def test_cpu_preset_verdicts_match_the_record(name, tmp_path):
    recorded = recorded_verdicts(DOCS.read_text()).get(name)
    if not recorded:
        pytest.skip(f"no seed-0 verdicts recorded for {name}: run `pgdat repro {name} --preset cpu --seeds 3` and "
                    f"record them in docs/reproductions.md")
    result = run_experiment(name, "cpu", tmp_path, seeds=1)
    got = {r.claim.name: r.verdict for r in result.results}
    assert {k: got.get(k) for k in recorded} == recorded, "\n".join(result.lines())
