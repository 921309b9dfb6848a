"""A robustness claim others can check: a RobustBench-style entry built from an :class:`EvalResult`.

The entry uses RobustBench's ``model_info`` field names where they exist (``dataset``, ``threat_model``, ``eps``,
``architecture``, ``additional_data``, ``number_forward_passes``, ``clean_acc``, ``autoattack_acc``: accuracies in
percent as strings with two decimals) and adds what is needed to check it: the number of test points, every attack
run with its implementation and version, pgdat's version and git SHA, the seed and the wall time.

A number is called ``autoattack_acc`` only when the cascade contained the reference AutoAttack in its ``standard``
version and ran on the full standard test set; otherwise ``autoattack_acc`` is null, the number is kept as
``robust_acc``, ``robust_acc_is`` says what it was, and ``not_autoattack_because`` lists the reasons.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
from dataclasses import dataclass
from typing import Any

import pgdat
from pgdat.attacks.autoattack import STANDARD as AA_STANDARD
from pgdat.attacks.specs import parse_attack
from pgdat.eval.robust import EvalResult

# size of each dataset's official test set: a claim covers the whole of it or it is not an AutoAttack claim
STANDARD_TEST_SIZES = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000, "cifar100": 10_000,
                       "svhn": 26_032}
# attack families run by the reference AutoAttack package (pyautoattack); every other family is pgdat's own code
REFERENCE_AA_FAMILIES = frozenset({"autoattack", "apgd-ce", "apgd-t", "apgd-dlr", "fab", "fab-t", "square"})
STANDARD_AA = "autoattack"  # the spec of the full standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square)
THREAT_NAMES = {"linf": "Linf", "l2": "L2"}


@dataclass(frozen=True)
class ClaimContext:
    """What the claim needs beyond the :class:`EvalResult`.

    dataset: registered dataset name. test_size: points in the test split that was loaded (N of the full split).
    architecture: a readable name (``PreActResNet18``, a class name). model: how to get the model (checkpoint and
    SHA-256, or ``--model-file`` and weights). additional_data: whether training used data beyond the dataset's
    train split (None: unknown). run_info: versions, git SHA and device (:func:`pgdat.runinfo.run_info`).
    wall_seconds: time of the whole evaluation. precision: autocast used for attack passes.
    """

    dataset: str
    test_size: int
    architecture: str
    model: dict[str, Any]
    additional_data: bool | None
    run_info: dict[str, Any]
    wall_seconds: float
    precision: str = "fp32"


def eps_text(eps: float) -> str:
    """``8/255`` when eps is a whole number of 0-255 pixel levels (to 1e-6), else the decimal (``0.5``)."""
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 * max(1.0, levels) else f"{eps:.6g}"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def attacks_run(specs: list[str]) -> list[dict[str, Any]]:
    """Each attack of the cascade (``clean`` excluded) with its implementation and version, in order."""
    out: list[dict[str, Any]] = []
    for spec in (s.strip().lower() for s in specs):
        if spec == STANDARD_AA:  # run as its standard components, one cascade step each, as the reference does
            out.append({"spec": spec, "implementation": "pyautoattack (reference AutoAttack, Croce & Hein 2020)",
                        "version": _package_version("pyautoattack"), "autoattack_version": "standard",
                        "components": list(AA_STANDARD)})
            continue
        a = parse_attack(spec)
        if a.family == "clean":
            continue
        if a.family in REFERENCE_AA_FAMILIES:
            out.append({"spec": a.spec, "implementation": "pyautoattack (reference AutoAttack, Croce & Hein 2020)",
                        "version": _package_version("pyautoattack"),
                        "autoattack_version": "standard" if a.family == STANDARD_AA else "custom"})
        else:
            out.append({"spec": a.spec, "implementation": "pgdat", "version": pgdat.__version__,
                        "steps": a.steps, "restarts": a.restarts})
    return out


def not_autoattack_because(res: EvalResult, specs: list[str], ctx: ClaimContext) -> list[str]:
    """Why the robust accuracy of ``res`` may not be called AutoAttack accuracy (empty: it may)."""
    reasons = []
    if STANDARD_AA not in specs:
        ran = ", ".join(s for s in specs if s != "clean") or "no attack"
        reasons.append(f"the attacks were {ran}, not the standard AutoAttack (add autoattack to --attacks)")
    full = STANDARD_TEST_SIZES.get(ctx.dataset)
    if full is None:
        reasons.append(f"dataset {ctx.dataset} has no standard test set of known size (standard: "
                       f"{', '.join(STANDARD_TEST_SIZES)})")
    elif ctx.test_size != full:
        reasons.append(f"the loaded {ctx.dataset} test split has {ctx.test_size} points, not the standard {full}")
    elif res.n != full:
        reasons.append(f"only {res.n} of the {full} test points were evaluated (--n 0 evaluates all)")
    return reasons


def _pct(acc: float) -> str:
    return f"{100 * acc:.2f}"


def _what_it_was(res: EvalResult, specs: list[str], ctx: ClaimContext) -> str:
    """One line: the cascade, the points, and the threat model behind ``robust_acc``."""
    attacks = " then ".join(s for s in specs if s != "clean") or "no attack (clean accuracy)"
    points = f"the first {res.n} of {ctx.test_size} {ctx.dataset} test points"
    return f"{attacks} on {points}, {THREAT_NAMES.get(res.norm, res.norm)} eps {eps_text(res.eps)}"


def build_claim(res: EvalResult, ctx: ClaimContext) -> dict[str, Any]:
    """The claim entry (a JSON-able dict) for the evaluation ``res`` described by ``ctx``."""
    specs = list(res.accuracy)  # attack specs in cascade order, clean first
    reasons = not_autoattack_because(res, specs, ctx)
    robust = _pct(res.robust_accuracy)
    info = ctx.run_info
    entry: dict[str, Any] = {
        "dataset": ctx.dataset, "threat_model": THREAT_NAMES.get(res.norm, res.norm), "eps": eps_text(res.eps),
        "eps_value": res.eps, "architecture": ctx.architecture, "additional_data": ctx.additional_data,
        "number_forward_passes": 1, "clean_acc": _pct(res.accuracy["clean"]),
        "autoattack_acc": None if reasons else robust, "robust_acc": robust,
        "robust_acc_is": _what_it_was(res, specs, ctx), "not_autoattack_because": reasons,
        "n_test_points": res.n, "test_set_size": ctx.test_size, "attacks": attacks_run(specs),
        "accuracy_by_attack": {k: _pct(v) for k, v in res.accuracy.items()}, "warnings": list(res.warnings),
        "seed": res.seed,
        "precision": ctx.precision, "model": ctx.model, "pgdat_version": info.get("pgdat"),
        "git_sha": info.get("git_sha"), "torch": info.get("torch"), "device": info.get("device"),
        "wall_seconds": round(ctx.wall_seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if not reasons and len([s for s in specs if s != "clean"]) > 1:
        entry["footnote"] = ("robust accuracy under the cascade " + " then ".join(specs[1:]) + ": a point counts "
                             "as robust only if every attack failed, so this is at most standard AutoAttack's alone")
    return entry


def claim_summary(entry: dict[str, Any]) -> str:
    """One line for the terminal: the AutoAttack number, or what the number was and why it is not one."""
    head = (f"{entry['dataset']} {entry['threat_model']} eps {entry['eps']}: clean {entry['clean_acc']}%, ")
    if entry["autoattack_acc"] is not None:
        return head + f"AutoAttack {entry['autoattack_acc']}% on {entry['n_test_points']} points"
    return (head + f"robust {entry['robust_acc']}% ({entry['robust_acc_is']}); NOT an AutoAttack number: "
            + "; ".join(entry["not_autoattack_because"]))
