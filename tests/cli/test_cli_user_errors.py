"""User errors on the command line: one ``pgdat CMD: error: ...`` line on stderr, exit code 2, no traceback."""

from pathlib import Path

import pytest

from pgdat.checkpoint import build_model, model_config, save_checkpoint
from pgdat.cli.main import main


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pgdat {command}: error:"), err
    return err[0]


@pytest.mark.parametrize("override", ["data.transforms=[", "method.params={beta: 6", "train.device='cpu"])
def test_train_malformed_yaml_override_is_one_line(tmp_path, capsys, override):
    assert main(["train", "--set", override, "--out", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys, "train")
    assert override in line and "not valid YAML" in line
    assert not (tmp_path / "run").exists()


def test_eval_checkpoint_of_another_dataset_fails_before_loading_data(tmp_path, capsys):
    """An MNIST model evaluated with --data cifar10 is refused at once (no CIFAR-10 download first), naming the
    dataset it was trained on."""
    cfg = model_config("small_cnn", 10, 1, (0.1307,), (0.3081,))
    ckpt = tmp_path / "mnist.pt"
    save_checkpoint({"model": build_model(cfg).state_dict(), "model_config": cfg,
                     "config": {"data": {"name": "mnist5k"}}}, ckpt)
    root = tmp_path / "data"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", "cifar10", "--data-root", str(root), "--no-download",
                 "--attacks", "clean", "--n", "8"]) == 2
    line = _one_error_line(capsys, "eval")
    assert "1-channel" in line and "3-channel" in line and "--data mnist5k" in line
    assert not root.exists()


def test_analyze_criticality_of_another_dataset_fails_before_loading_data(tmp_path, capsys, monkeypatch):
    """Same refusal for layer criticality: every model is checked against --data before the data is loaded."""
    import pgdat.data

    cfg = model_config("small_cnn", 10, 1, (0.1307,), (0.3081,))
    ckpt = tmp_path / "mnist.pt"
    save_checkpoint({"model": build_model(cfg).state_dict(), "model_config": cfg,
                     "config": {"data": {"name": "mnist5k"}}}, ckpt)

    def no_loading(*a, **k):
        raise AssertionError("the dataset was loaded before the model was checked against it")

    monkeypatch.setattr(pgdat.data, "load_dataset", no_loading)
    assert main(["analyze", "criticality", f"a={ckpt}", "--data", "cifar10", "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys, "analyze")
    assert "1-channel" in line and "3-channel" in line and "--data mnist5k" in line


@pytest.mark.parametrize("args,msg", [
    (["--epochs", "1"], "has no config.yaml"),
    (["--epochs", "a,b"], "--epochs must be comma-separated"),
    (["--epochs", ","], "--epochs names no epoch"),
])
def test_analyze_induced_on_a_folder_that_is_not_a_run(tmp_path, capsys, args, msg):
    assert main(["analyze", "induced", str(tmp_path), *args]) == 2
    assert msg in _one_error_line(capsys, "analyze")


def _options(parser, path):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, [*path, name])
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), action


def test_every_option_of_every_command_has_help(capsys):
    from pgdat.cli.main import build_parser

    undocumented = [f"{cmd} {a.option_strings or a.dest}" for cmd, a in _options(build_parser(), ["pgdat"])
                    if not a.help]
    assert undocumented == []
    for cmd in ["train", "eval", "repro", "report", "compare", "analyze", "analyze criticality", "analyze induced"]:
        with pytest.raises(SystemExit) as e:
            main([*cmd.split(), "--help"])
        assert e.value.code == 0 and "options:" in capsys.readouterr().out


TINY_TRAIN = ["data.n_train=128", "data.val_size=32", "data.batch_size=64", "attack.steps=1",
              "attack.eps_warmup_epochs=0", "train.epochs=2", "eval.attack=pgd-1", "eval.n_test=32",
              "eval.final_attacks=clean", "eval.n_final=32", "train.progress=false"]


def _interrupt_in_epoch_2(monkeypatch, where: str) -> None:
    """Ctrl-C once, during the second epoch: in the training loop (plain, or as torch.save's zip writer turns it
    into a RuntimeError raised while handling it) or half-way through writing that epoch's last.pt."""
    import torch

    from pgdat.training.trainer import Trainer

    fired = []
    if where == "save":
        import pgdat.training.trainer as trainer_module

        real_checkpoint, real_save = trainer_module.save_checkpoint, torch.save

        def save_checkpoint(payload, path):
            if Path(path).name == "last.pt" and payload["epoch"] == 2 and not fired:
                fired.append("last.pt of epoch 2")
            return real_checkpoint(payload, path)

        def save(obj, f, *a, **k):
            if len(fired) == 1:  # the first torch.save of epoch 2's last.pt
                fired.append("interrupted")
                f.write(b"PK\x03\x04 half a checkpoint")
                raise KeyboardInterrupt
            return real_save(obj, f, *a, **k)

        monkeypatch.setattr(trainer_module, "save_checkpoint", save_checkpoint)
        monkeypatch.setattr(torch, "save", save)
        return
    real_epoch = Trainer.train_epoch

    def train_epoch(self):
        if self.epoch == 1 and not fired:
            fired.append(1)
            if where == "loop":
                raise KeyboardInterrupt
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None
        return real_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


@pytest.mark.parametrize("where", ["loop", "chained", "save"])
def test_train_interrupted_leaves_a_resumable_run(tmp_path, capsys, monkeypatch, where):
    from pgdat.checkpoint import load_checkpoint

    run = tmp_path / "run"
    args = ["train", *[a for s in TINY_TRAIN for a in ("--set", s)], "--out", str(run)]
    _interrupt_in_epoch_2(monkeypatch, where)
    try:
        rc = main(args)
    except BaseException as e:  # noqa: BLE001 - an escaping KeyboardInterrupt would stop pytest itself
        pytest.fail(f"Ctrl-C escaped pgdat train as {type(e).__name__}: {e}")
    assert rc == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("pgdat train: interrupted") and f"--resume {run}" in line
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # whole, and the last finished epoch
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert main(["train", "--resume", str(run)]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2 and (run / "final.json").is_file()


def test_eval_interrupted_is_one_line(monkeypatch, capsys):
    import pgdat.cli.eval as cli_eval

    def evaluate(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_eval, "evaluate", evaluate)
    try:
        rc = main(["eval", "--model", "small_cnn", "--n", "8", "--attacks", "clean"])
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"Ctrl-C escaped pgdat eval as {type(e).__name__}")
    assert rc == 130 and capsys.readouterr().err.strip() == "pgdat eval: interrupted"


@pytest.mark.parametrize("command", [
    ["train", "--out", "{file}", "--set", "train.epochs=1"],
    ["eval", "--model", "small_cnn", "--n", "8", "--attacks", "clean", "--json", "{file}/eval.json"],
    ["train", "--config", "{binary}"],
])
def test_unusable_paths_are_one_line(tmp_path, capsys, command):
    (tmp_path / "afile").write_text("in the way")
    (tmp_path / "recipe.yaml").write_bytes(b"\x80\x03 not text")
    args = [a.format(file=tmp_path / "afile", binary=tmp_path / "recipe.yaml") for a in command]
    assert main(args) == 2
    line = _one_error_line(capsys, command[0])
    assert ("afile" in line and "File exists" in line) or "not a UTF-8 text file" in line


def test_cli_warning_is_one_line_without_source(tmp_path):
    import subprocess
    import sys

    sets = [s for s in TINY_TRAIN if not s.startswith(("train.epochs", "attack.eps_warmup"))]
    sets += ["train.epochs=1", "attack.eps_warmup_epochs=3", "eval.final_attacks=clean"]
    proc = subprocess.run([sys.executable, "-m", "pgdat", "train", *[a for s in sets for a in ("--set", s)],
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert any(ln.startswith("pgdat train: warning: attack.eps_warmup_epochs 3 >= train.epochs 1") for ln in err), err
    assert not any("UserWarning" in ln or "Trainer(" in ln for ln in err), err
