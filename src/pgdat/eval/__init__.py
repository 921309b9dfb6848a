"""Robust evaluation: a cascade of attacks over still-robust points, plus sanity checks."""

from pgdat.eval.checks import CheckResult, output_warnings, sanity_checks
from pgdat.eval.robust import EvalResult, check_batch_fits, evaluate

__all__ = ["CheckResult", "EvalResult", "check_batch_fits", "evaluate", "output_warnings", "sanity_checks"]
