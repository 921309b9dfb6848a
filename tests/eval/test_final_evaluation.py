"""The final evaluation is AutoAttack-grade in every recipe and says which attacks produced each number."""

from __future__ import annotations

import json

import pytest

from pgdat.attacks.autoattack import STANDARD, reference_version
from pgdat.attacks.specs import expand_specs
from pgdat.config import load_config
from pgdat.config.loader import RECIPES
from pgdat.eval.labels import cascade_label, per_epoch_label
from pgdat.report.runs import load_run, summary_row
from pgdat.training import Trainer, write_config


def test_default_final_evaluation_is_apgd_ce_then_apgd_t():
    assert expand_specs(load_config(None).eval.final_attacks) == ["clean", "apgd-ce", "apgd-t"]
    assert expand_specs(load_config("default").eval.final_attacks) == ["clean", "apgd-ce", "apgd-t"]


@pytest.mark.parametrize("recipe", sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml")
                                          if p.parent != RECIPES))
def test_dataset_recipes_end_with_standard_autoattack(recipe):
    specs = expand_specs(load_config(recipe).eval.final_attacks)
    assert tuple(specs[-len(STANDARD):]) == STANDARD, specs


def test_labels_name_the_attacks():
    ref = f"(reference pyautoattack {reference_version()})"
    assert per_epoch_label("pgd-10") == "PGD-10, per-epoch"
    assert cascade_label("clean,apgd-ce,apgd-t") == f"APGD-CE > APGD-T {ref}"
    assert cascade_label("clean,pgd-20,autoattack") == f"PGD-20 > AutoAttack (standard) {ref}"
    assert cascade_label("clean,pgd-5") == "PGD-5"


def test_final_json_metrics_and_compare_say_which_attacks(tmp_path, tiny_overrides):
    cfg = load_config("default", [*tiny_overrides, "train.epochs=1", "train.precision=fp32", "data.n_train=128",
                                  "eval.n_test=50", "eval.n_final=50", "data.val_size=50"])
    Trainer(cfg, tmp_path / "run", callbacks=None).fit()
    write_config(cfg, tmp_path / "run" / "config.yaml")  # as pgdat train does
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["robust_accuracy_by"] == "PGD-5" and final["cascade"] == ["clean", "pgd-5"]
    assert final["per_epoch_robust_by"] == "PGD-3, per-epoch"
    assert list(final["best"]["accuracy"]) == ["clean", "pgd-5"]
    run = load_run(tmp_path / "run")
    assert all(r["robust_acc_by"] == "PGD-3, per-epoch" for r in run.history if "test_robust_acc" in r)
    row = summary_row(run)
    assert row["final_attacks"] == "PGD-5" and row["per_epoch_attack"] == "PGD-3, per-epoch"
    assert not list((tmp_path / "run").glob("final_*.state"))  # resume files removed once done
