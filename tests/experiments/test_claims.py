"""Verdict statistics: t-intervals over seeds, the paired-difference verdict, the single-seed rule."""

from __future__ import annotations

import math

import pytest

from pgdat.errors import PgdatError
from pgdat.experiments.claims import Claim, check_claims, evaluate, interval, t_quantile


def claim(op: str = ">", right: str | float = "b", resolution: float = 0.0) -> Claim:
    return Claim("c", "a beats b", "a", op, right, "paper, Fig. 1", "CIFAR-10", resolution, "%")


def test_t_quantile_matches_tables():
    assert t_quantile(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(30) == pytest.approx(2.042, abs=1e-3)


def test_interval_is_the_t_interval():
    iv = interval([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.half == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert interval([5.0]).half is None


def test_paired_difference_decides_even_when_the_sides_overlap():
    # a and b vary together across seeds (seed effects), a is always 1 above b: the sides' intervals overlap,
    # the paired difference does not contain 0
    seeds = [{"a": 50.0 + s, "b": 49.0 + s} for s in (0.0, 5.0, 10.0)]
    r = evaluate(claim(), seeds)
    assert r.verdict == "shown"
    assert r.left.mean - r.left.half < r.right.mean + r.right.half  # the sides overlap
    assert r.diff.mean == pytest.approx(1.0) and r.diff.half == pytest.approx(0.0)
    assert "3 seeds, 95% CI" in r.line() and "[shown]" in r.line()


def test_verdicts_over_seeds():
    assert evaluate(claim(), [{"a": 1.0, "b": 5.0}, {"a": 2.0, "b": 5.5}, {"a": 1.5, "b": 5.2}]).verdict == "not shown"
    mixed = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 1.0}, {"a": 2.0, "b": 2.1}]
    assert evaluate(claim(), mixed).verdict == "inconclusive"
    assert evaluate(claim("<"), [{"a": 1.0, "b": 5.0}, {"a": 2.0, "b": 5.5}]).verdict == "shown"
    assert evaluate(claim(right=1.0), [{"a": 3.0}, {"a": 3.1}, {"a": 2.9}]).verdict == "shown"  # a constant side


def test_single_seed_rule_uses_the_resolution_and_says_so():
    r = evaluate(claim(resolution=1.0), [{"a": 10.5, "b": 10.0}])
    assert r.verdict == "inconclusive" and "single seed" in r.line() and "resolution" in r.rule
    assert evaluate(claim(resolution=1.0), [{"a": 12.0, "b": 10.0}]).verdict == "shown"
    assert evaluate(claim(resolution=1.0), [{"a": 8.0, "b": 10.0}]).verdict == "not shown"


def test_missing_metric_is_not_measured():
    r = evaluate(claim(), [{"a": 1.0}])
    assert r.verdict == "not measured" and "no value for b" in r.line()


def test_bad_claims_are_refused():
    with pytest.raises(PgdatError, match="op must be one of >, <"):
        claim(op=">=")
    with pytest.raises(PgdatError, match="repeated: c"):
        check_claims((claim(), claim()), "x")


def test_every_registered_claim_is_complete():
    from pgdat.experiments import EXPERIMENTS

    assert len(EXPERIMENTS) == 8
    for exp in EXPERIMENTS.values():
        assert exp.claims and exp.title
        for c in exp.claims:
            assert c.statement and c.source and c.paper_scale, (exp.name, c.name)


def test_small_values_keep_three_significant_digits():
    """A kernel distance of 0.0123 ± 0.0045 must not print as 0.01 ± 0.00; accuracies keep 2 decimals."""
    from pgdat.experiments.claims import Interval

    assert Interval(0.0123, 0.0045, 3).text() == "0.0123 ± 0.0045"
    assert Interval(60.444, 5.8231, 3).text("%") == "60.44 ± 5.82%"
    assert Interval(0.5, None, 1).text() == "0.500" and Interval(0.0, 0.0, 3).text() == "0.00 ± 0.00"
    r = evaluate(claim(), [{"a": 0.0312, "b": 0.0051}, {"a": 0.0290, "b": 0.0049}, {"a": 0.0333, "b": 0.0050}])
    assert "a 0.0312 ± 0.0053" in r.line() and r.verdict == "shown"
