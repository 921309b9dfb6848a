"""The claim: AutoAttack only for the standard version on the full standard test set; else it says what it was."""

import importlib.metadata
import json

import pytest
import torch

import pgdat
from pgdat.cli.main import main
from pgdat.eval.claim import ClaimContext, attacks_run, build_claim, claim_summary, eps_text
from pgdat.eval.robust import EvalResult

INFO = {"pgdat": pgdat.__version__, "git_sha": "0123abc", "torch": "2.x", "device": "cpu"}


def _result(specs, n, robust_share, clean_share=0.9):
    """An EvalResult over n points: clean_share correct, robust_share still correct after the cascade."""
    clean = torch.arange(n) < round(clean_share * n)
    robust = torch.arange(n) < round(robust_share * n)
    flags = {"clean": clean, **{s: robust for s in specs}}
    return EvalResult(accuracy={k: float(v.double().mean()) for k, v in flags.items()}, flags=flags, n=n,
                      eps=8 / 255, norm="linf", seed=0)


def _ctx(dataset="cifar10", test_size=10_000):
    return ClaimContext(dataset=dataset, test_size=test_size, architecture="PreActResNet18", model={"checkpoint": "x"},
                        additional_data=False, run_info=INFO, wall_seconds=12.5)


def test_standard_autoattack_on_the_full_test_set_is_called_autoattack():
    entry = build_claim(_result(["autoattack"], 10_000, 0.4712), _ctx())
    assert entry["autoattack_acc"] == "47.12" == entry["robust_acc"]
    assert entry["clean_acc"] == "90.00" and entry["not_autoattack_because"] == []
    assert (entry["dataset"], entry["threat_model"], entry["eps"]) == ("cifar10", "Linf", "8/255")
    assert entry["n_test_points"] == 10_000 and entry["wall_seconds"] == 12.5
    assert entry["pgdat_version"] == pgdat.__version__ and entry["git_sha"] == "0123abc"
    assert entry["attacks"] == [{"spec": "autoattack", "implementation": entry["attacks"][0]["implementation"],
                                 "version": importlib.metadata.version("pyautoattack"),
                                 "autoattack_version": "standard",
                                 "components": ["apgd-ce", "apgd-t", "fab-t", "square"]}]
    assert "footnote" not in entry and entry["warnings"] == []
    assert claim_summary(entry).endswith("AutoAttack 47.12% on 10000 points")


def test_a_subset_of_the_test_set_is_not_called_autoattack():
    entry = build_claim(_result(["autoattack"], 1000, 0.45), _ctx())
    assert entry["autoattack_acc"] is None and entry["robust_acc"] == "45.00"
    assert entry["not_autoattack_because"] == ["only 1000 of the 10000 test points were evaluated (--n 0 evaluates "
                                               "all)"]
    assert entry["robust_acc_is"] == "autoattack on the first 1000 of 10000 cifar10 test points, Linf eps 8/255"
    assert "NOT an AutoAttack number" in claim_summary(entry)


def test_apgd_ce_alone_is_not_called_autoattack_and_says_what_ran():
    entry = build_claim(_result(["apgd-ce", "pgd-20"], 10_000, 0.5), _ctx())
    assert entry["autoattack_acc"] is None
    assert entry["not_autoattack_because"] == ["the attacks were apgd-ce, pgd-20, not the standard AutoAttack (add "
                                               "autoattack to --attacks)"]
    assert entry["robust_acc_is"].startswith("apgd-ce then pgd-20 on the first 10000 of 10000")
    assert [a["autoattack_version"] for a in entry["attacks"][:1]] == ["custom"]
    assert entry["attacks"][1] == {"spec": "pgd-20", "implementation": "pgdat", "version": pgdat.__version__,
                                   "steps": 20, "restarts": 1}


@pytest.mark.parametrize("dataset, test_size, reason", [
    ("mnist5k", 1000, "dataset mnist5k has no standard test set of known size"),
    ("cifar10", 9000, "the loaded cifar10 test split has 9000 points, not the standard 10000"),
])
def test_non_standard_test_sets_are_not_called_autoattack(dataset, test_size, reason):
    entry = build_claim(_result(["autoattack"], test_size, 0.5), _ctx(dataset, test_size))
    assert entry["autoattack_acc"] is None
    assert entry["not_autoattack_because"][0].startswith(reason)


def test_a_stronger_cascade_ending_in_autoattack_keeps_the_name_with_a_footnote():
    entry = build_claim(_result(["pgd-20", "autoattack"], 10_000, 0.44), _ctx())
    assert entry["autoattack_acc"] == "44.00"
    assert "at most standard AutoAttack's alone" in entry["footnote"]


def test_warnings_of_the_evaluation_travel_with_the_claim():
    res = _result(["autoattack"], 10_000, 0.5)
    res.warnings.append("out of memory at batch size 512: went on with 256")
    assert build_claim(res, _ctx())["warnings"] == ["out of memory at batch size 512: went on with 256"]


@pytest.mark.parametrize("eps, text", [(8 / 255, "8/255"), (4 / 255, "4/255"), (0.5, "0.5"), (0.3, "0.3"),
                                       (0.031, "0.031")])
def test_eps_text(eps, text):
    assert eps_text(eps) == text


def test_attacks_run_skips_clean_and_keeps_order():
    assert [a["spec"] for a in attacks_run(["clean", "fgsm", "square"])] == ["fgsm", "square"]


def test_cli_claim_of_a_real_evaluation(tmp_path, capsys):
    out, claim = tmp_path / "eval.json", tmp_path / "claim.json"
    assert main(["eval", "--model", "small_cnn", "--attacks", "clean,fgsm", "--eps", "0.1", "--n", "32",
                 "--json", str(out), "--claim", str(claim)]) == 0
    res, entry = json.loads(out.read_text()), json.loads(claim.read_text())
    assert entry["clean_acc"] == f"{100 * res['accuracy']['clean']:.2f}"
    assert entry["robust_acc"] == f"{100 * res['accuracy']['fgsm']:.2f}" and entry["autoattack_acc"] is None
    assert entry["architecture"] == "small_cnn" and entry["additional_data"] is False
    assert entry["n_test_points"] == 32 and entry["test_set_size"] == 1000 and entry["wall_seconds"] > 0
    assert entry["model"]["fresh_init"] == "small_cnn"


def test_cli_never_overwrites_a_claim_and_evaluates_nothing(tmp_path, capsys):
    claim = tmp_path / "claim.json"
    claim.write_text('{"autoattack_acc": "51.00"}')
    before = claim.read_bytes()
    assert main(["eval", "--model", "small_cnn", "--n", "8", "--claim", str(claim)]) == 2
    captured = capsys.readouterr()
    assert "--claim" in captured.err and "already exists and is never overwritten" in captured.err
    assert "accuracy" not in captured.out  # refused before the evaluation ran
    assert claim.read_bytes() == before
