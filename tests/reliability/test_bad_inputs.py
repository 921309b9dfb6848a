"""Bad inputs fail up front with one line ``pgdat <cmd>: error: ...`` (exit 2) or a PgdatError in the library API."""

from __future__ import annotations

import pytest
import torch
import yaml

from pgdat.attacks import fgsm, pgd
from pgdat.checkpoint import build_model, model_config, save_checkpoint
from pgdat.cli.main import main
from pgdat.config import config_to_dict, load_config
from pgdat.errors import PgdatError
from pgdat.eval import evaluate

# (argv, fragment of the one-line error the user sees)
EVAL_CASES = [
    (["--eps", "0"], "--eps must be > 0 for the attacks clean,pgd-20 (got 0)"),
    (["--eps", "-0.1"], "--eps must be a finite number >= 0, got '-0.1'; write it like 8/255 or 0.031"),
    (["--eps", "nan"], "--eps must be a finite number >= 0, got 'nan'"),
    (["--eps", "inf"], "--eps must be a finite number >= 0, got 'inf'"),
    (["--eps", "1e999"], "--eps must be a finite number >= 0, got '1e999'"),
    (["--eps=-8/255"], "--eps must be a finite number >= 0, got '-8/255'"),
    (["--eps", "0.3", "--step-size", "nan"], "--step-size must be a finite number >= 0, got 'nan'"),
    (["--eps", "abc"], "cannot read 'abc' as a number: write --eps like 8/255 or 0.031"),
    (["--eps", "8/0"], "cannot read '8/0' as a number: write --eps like 8/255 or 0.031"),
    (["--eps", "0.3", "--step-size", "0.5"], "--step-size must be in (0, eps=0.3] (got 0.5)"),
    (["--attacks", "clean,pgdd-20"], "unknown attack 'pgdd'; valid attacks: apgd-ce"),
    (["--attacks", "clean,pgd-0"], "attack 'pgd-0': steps and restarts must be >= 1"),
    (["--model", "resnet50"], "unknown model 'resnet50'; valid models: lowpass, preact_resnet18"),
    (["--data", "imagenet"], "unknown dataset 'imagenet'; valid datasets: cifar-10"),
    (["--checkpoint", "/nonexistent/run.pt"], "checkpoint /nonexistent/run.pt does not exist"),
    (["--data", "mnist", "--data-root", "/nonexistent", "--no-download"], "mnist: missing train-images-idx3-ubyte.gz"),
    (["--data", "mnist", "--data-root", "/nonexistent", "--no-download"], "pgdat eval: drop --no-download"),
    (["--precision", "fp8"], "unknown precision 'fp8'; valid: auto, fp32, bf16, fp16"),
    (["--batch-size", "0"], "batch_size must be >= 1 (got 0)"),
    (["--n", "-1"], "--n must be >= 0 (got -1)"),
    (["--device", "gpu"], "--device 'gpu' is not a device; use cpu, cuda or cuda:N"),
]
TRAIN_CASES = [
    (["--config", "nonexistent.yaml"], "config 'nonexistent.yaml' is neither a file nor a recipe; recipes:"),
    (["--set", "attack.epss=0.1"], "unknown config key 'attack.epss'; valid keys in attack: eps,"),
    (["--set", "train.epochs=abc"], "train.epochs must be an integer (got 'abc')"),
    (["--set", "attack.eps"], "override 'attack.eps' must look like section.key=value"),
    (["--set", "method.name=foo"], "unknown method 'foo'; valid methods:"),
    (["--set", "model.name=foo"], "unknown model 'foo'; valid models:"),
    (["--set", "data.name=foo"], "unknown dataset 'foo'; valid datasets:"),
    (["--resume", "/nonexistent/run"], "cannot resume /nonexistent/run: it has no last.pt/config.yaml"),
]


def _one_line_error(capsys, cmd: str) -> str:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"pgdat {cmd}: error: "), err
    return err


@pytest.mark.parametrize("argv,fragment", EVAL_CASES, ids=[" ".join(a) for a, _ in EVAL_CASES])
def test_eval_bad_option(capsys, argv, fragment):
    assert main(["eval", "--n", "8", *argv]) == 2
    assert fragment in _one_line_error(capsys, "eval")


@pytest.mark.parametrize("argv,fragment", TRAIN_CASES, ids=[" ".join(a) for a, _ in TRAIN_CASES])
def test_train_bad_option(tmp_path, capsys, tiny_overrides, argv, fragment):
    sets = [a for o in tiny_overrides + ["train.epochs=1"] for a in ("--set", o)]
    out = [] if "--resume" in argv else ["--out", str(tmp_path / "run")]
    assert main(["train", *sets, *argv, *out]) == 2
    assert fragment in _one_line_error(capsys, "train")
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("override,fragment", [
    ("attack.eps=0", "config key attack.eps: must be a finite number in (0.0, inf]"),
    ("attack.eps=-8/255", "config key attack.eps"),
    ("attack.steps=0", "config key attack.steps: must be an integer >= 1"),
    ("eval.attack=pgdd-10", "config key eval.attack: unknown attack 'pgdd'"),
])
def test_train_semantic_validation_before_any_work(tmp_path, capsys, tiny_overrides, override, fragment):
    """``Trainer.__init__`` validates the whole config before any data is loaded or model built."""
    sets = [a for o in tiny_overrides + ["train.epochs=1", override] for a in ("--set", o)]
    assert main(["train", *sets, "--out", str(tmp_path / "run")]) == 2
    assert fragment in _one_line_error(capsys, "train")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_wrong_number_of_classes_through_cli(tmp_path, capsys):
    cfg = model_config("small_cnn", 4, 1, [0.5], [0.5])
    save_checkpoint({"model": build_model(cfg).state_dict(), "model_config": cfg}, tmp_path / "four.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "four.pt"), "--n", "8"]) == 2
    err = _one_line_error(capsys, "eval")
    assert "predicts 4 classes, but mnist5k has 1-channel images and 10 classes" in err


def test_resume_with_incompatible_config_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(load_config("default"))))
    (run / "last.pt").write_bytes(b"never read: the config check comes first")
    assert main(["train", "--resume", str(run), "--set", "attack.eps=0.1", "--set", "model.name=resnet18"]) == 2
    err = _one_line_error(capsys, "train")
    assert f"cannot resume {run} with a different config: attack.eps, model.name changed" in err


def test_norm_outside_choices_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "--norm", "l1"])
    assert info.value.code == 2
    assert "pgdat eval: error: argument --norm: invalid choice: 'l1'" in capsys.readouterr().err


def test_library_rejects_images_outside_unit_range_and_bad_labels(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match=r"images must lie in \[0,1\] \(got range .*normalisation belongs inside"):
        evaluate(tiny_model, x * 255, y, attacks="clean,pgd-2", eps=0.1)
    with pytest.raises(PgdatError, match=r"images must lie in \[0,1\]"):
        pgd(tiny_model, x - 0.5, y, eps=0.1, step_size=0.02, steps=2)
    with pytest.raises(PgdatError, match="images must be float tensors in \\[0,1\\], got dtype torch.uint8"):
        fgsm(tiny_model, (x * 255).to(torch.uint8), y, eps=0.1)
    with pytest.raises(PgdatError, match=r"labels span \[3, 6\] but the model has 4 outputs"):
        evaluate(tiny_model, x, y + 3, attacks="clean,pgd-2", eps=0.1)
    with pytest.raises(PgdatError, match=r"expected images \(B, C, H, W\) and labels \(B,\)"):
        evaluate(tiny_model, x, y[:5], attacks="clean", eps=0.1)
    with pytest.raises(PgdatError, match="eps must be a finite number >= 0"):
        evaluate(tiny_model, x, y, attacks="clean,pgd-2", eps=float("nan"))
