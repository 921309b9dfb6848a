"""``pgdat eval`` end to end on the embedded default."""

import json

import pytest

from pgdat.cli.main import main


def test_eval_fresh_model_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["eval", "--model", "small_cnn", "--data", "mnist5k", "--attacks", "clean,fgsm,pgd-5",
               "--eps", "8/255", "--n", "64", "--json", str(out), "--sanity", "--batch-size", "32"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["n"] == 64 and res["eps"] == pytest.approx(8 / 255) and res["norm"] == "linf"
    assert list(res["accuracy"]) == ["clean", "fgsm", "pgd-5"]
    assert res["accuracy"]["pgd-5"] <= res["accuracy"]["fgsm"] <= res["accuracy"]["clean"]
    assert {"pgdat", "torch", "git_sha", "device"} <= set(res["info"]) and res["seed"] == 0
    assert {c["name"] for c in res["sanity"]} == {"eps0_equals_clean", "huge_eps_breaks_model",
                                                  "nonzero_input_gradients"}
    table = capsys.readouterr().out
    assert "pgd-5" in table and "%" in table


def test_eval_trained_checkpoint(tmp_path):
    sets = ["data.n_train=384", "data.val_size=100", "attack.steps=2", "attack.eps_warmup_epochs=0", "train.epochs=2",
            "eval.attack=pgd-3", "eval.n_test=100", "eval.n_final=100", "train.progress=false"]
    assert main(["train", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "run")]) == 0
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--attacks", "clean,pgd-10,apgd-ce", "--eps", "0.3",
                 "--n", "100", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["model"]["name"] == "small_cnn" and res["checkpoint"] == str(tmp_path / "run")
    assert res["accuracy"]["clean"] > 0.3  # trained: far above chance
    assert res["accuracy"]["apgd-ce"] <= res["accuracy"]["pgd-10"] <= res["accuracy"]["clean"]


@pytest.mark.parametrize("args,msg", [
    (["--eps", "-1"], "eps must be"),
    (["--eps", "big"], "8/255"),
    (["--attacks", "clean,deepfool"], "valid attacks"),
    (["--checkpoint", "/nonexistent/run"], "does not exist"),
    (["--data", "imagenet"], "valid datasets"),
    (["--model", "vgg"], "valid models"),
    (["--n", "-3"], "--n must be"),
])
def test_eval_bad_input_is_one_clear_line(capsys, args, msg):
    base = ["eval", "--n", "8", "--attacks", "clean"]
    if "--model" not in args and "--checkpoint" not in args:
        base += ["--model", "small_cnn"]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0] and err[0].startswith("pgdat eval: error:")


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_channels_last_gives_the_contiguous_numbers_and_leaves_the_format_to_the_model(tmp_path, monkeypatch):
    """--channels-last runs the model in channels_last (seen by evaluate) with the same accuracies as a contiguous
    run for deterministic attacks on this model."""
    import torch

    import pgdat.cli.eval as cli_eval

    formats = []
    real = cli_eval.evaluate

    def spy(model, x, *a, **kw):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        formats.append(conv.weight.is_contiguous(memory_format=torch.channels_last)
                       and not conv.weight.is_contiguous())
        return real(model, x, *a, **kw)

    monkeypatch.setattr(cli_eval, "evaluate", spy)
    args = ["eval", "--model", "small_cnn", "--data", "mnist5k", "--attacks", "clean,fgsm", "--eps", "0.1",
            "--n", "32", "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "a.json")]) == 0
    assert main([*args, "--channels-last", "--json", str(tmp_path / "b.json")]) == 0
    assert formats == [False, True]
    a, b = (json.loads((tmp_path / f).read_text())["accuracy"] for f in ("a.json", "b.json"))
    assert a == b
