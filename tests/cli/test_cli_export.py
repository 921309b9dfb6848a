"""pgdat export RUN --format safetensors: weights + JSON that load without pickle; no file is ever overwritten."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pgdat.checkpoint import build_model, load_model, model_config, save_checkpoint
from pgdat.cli.main import main
from pgdat.errors import PgdatError
from pgdat.models.export import load_exported


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as the trainer leaves it: best.pt and last.pt (with EMA weights), config.yaml, metrics."""
    torch.manual_seed(0)
    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081], input_size=28)
    run = tmp_path / "run"
    states = [build_model(cfg).state_dict() for _ in range(3)]
    config = {"data": {"name": "mnist5k"}, "method": {"name": "pgd_at"}, "attack": {"norm": "linf", "eps": 0.3}}
    save_checkpoint({"model": states[0], "ema": states[1], "model_config": cfg, "config": config, "epoch": 7},
                    run / "best.pt")
    save_checkpoint({"model": states[2], "model_config": cfg, "config": config, "epoch": 9}, run / "last.pt")
    (run / "config.yaml").write_text("train: {epochs: 9}\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return run


def test_export_loads_without_pickle_to_the_same_logits(run_dir, monkeypatch, capsys):
    before = _digests(run_dir)
    assert main(["export", str(run_dir), "--format", "safetensors"]) == 0
    assert _digests(run_dir) == before  # the run's own files are untouched
    weights, desc_path = run_dir / "export" / "best.safetensors", run_dir / "export" / "best.json"
    desc = json.loads(desc_path.read_text())
    assert desc["model_config"]["kwargs"] == {"input_size": 28} and desc["source"]["epoch"] == 7
    assert desc["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert desc["training"] == {"dataset": "mnist5k", "method": "pgd_at", "norm": "linf", "eps": 0.3}
    with safe_open(str(weights), "pt") as f:
        assert json.loads(f.metadata()["pgdat_model_config"]) == desc["model_config"]
    reference = load_model(run_dir / "best.pt")
    x = torch.rand(4, 1, 28, 28)

    def no_pickle(*a, **k):
        raise AssertionError("the export must load without torch.load")

    monkeypatch.setattr(torch, "load", no_pickle)
    state = load_file(str(weights))  # what a reader without pgdat does
    assert set(state) == set(reference.state_dict())
    assert all(torch.equal(state[k], v) for k, v in reference.state_dict().items())
    with torch.no_grad():
        assert torch.equal(load_exported(desc_path)(x), reference(x))


def test_export_never_overwrites(run_dir, capsys):
    assert main(["export", str(run_dir)]) == 0
    first = _digests(run_dir / "export")
    assert main(["export", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "already exists and is never overwritten" in err and "--out" in err
    assert _digests(run_dir / "export") == first


def test_export_of_ema_and_of_a_named_checkpoint(run_dir, tmp_path):
    out = tmp_path / "shared"
    assert main(["export", str(run_dir), "--which", "ema", "--out", str(out)]) == 0
    assert main(["export", str(run_dir / "last.pt"), "--out", str(out)]) == 0
    ema = torch.load(run_dir / "best.pt", weights_only=True)["ema"]
    assert all(torch.equal(load_file(str(out / "best-ema.safetensors"))[k], v) for k, v in ema.items())
    assert json.loads((out / "last.json").read_text())["source"]["epoch"] == 9


def test_export_of_missing_ema_says_how_to_get_one(run_dir, capsys):
    assert main(["export", str(run_dir / "last.pt"), "--which", "ema"]) == 2
    assert "--which ema: " in capsys.readouterr().err
    assert not (run_dir / "export").exists()


def test_changed_weights_are_detected(run_dir):
    assert main(["export", str(run_dir)]) == 0
    weights = run_dir / "export" / "best.safetensors"
    state = load_file(str(weights))
    name = next(k for k in state if k.startswith("net."))
    state[name] = state[name] + 1  # someone's edit of the weights after the export
    weights.unlink()
    save_file(state, str(weights))
    with pytest.raises(PgdatError, match="does not match the SHA-256"):
        load_exported(run_dir / "export" / "best.json")


def test_pgdat_eval_of_an_export_equals_eval_of_its_checkpoint(run_dir, tmp_path):
    assert main(["export", str(run_dir)]) == 0
    common = ["--data", "mnist5k", "--n", "64", "--attacks", "clean,pgd-3", "--eps", "0.1"]
    assert main(["eval", "--checkpoint", str(run_dir / "best.pt"), *common, "--json", str(tmp_path / "a.json")]) == 0
    assert main(["eval", "--model-file", str(run_dir / "export" / "best.json"), *common,
                 "--json", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["accuracy"] == b["accuracy"]
    assert b["model"]["architecture"] == "small_cnn(input_size=28)"


def test_pgdat_eval_of_an_export_refuses_extra_weights(run_dir, capsys):
    assert main(["export", str(run_dir)]) == 0
    desc = str(run_dir / "export" / "best.json")
    assert main(["eval", "--model-file", desc, "--weights", "x.pt"]) == 2
    assert "is a pgdat export: its weights and normalisation come with it, so drop --weights" in capsys.readouterr().err
    assert main(["eval", "--model-file", desc, "--data", "cifar10"]) == 2
    assert "evaluate it with --data mnist5k" in capsys.readouterr().err


def test_broken_exports_are_named(run_dir, tmp_path):
    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "other.json").write_text('{"format": "robustbench"}')
    for name, msg in (("missing.json", "does not exist"), ("notjson.json", "is not JSON"),
                      ("other.json", r"is not a pgdat export \(format 'robustbench'")):
        with pytest.raises(PgdatError, match=msg):
            load_exported(tmp_path / name)
    assert main(["export", str(run_dir)]) == 0
    (run_dir / "export" / "best.safetensors").unlink()
    with pytest.raises(PgdatError, match="keep the export's two files together"):
        load_exported(run_dir / "export" / "best.json")
