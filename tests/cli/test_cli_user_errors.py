"""User errors on the command line: one ``pgdat CMD: error: ...`` line on stderr, exit code 2, no traceback."""

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
