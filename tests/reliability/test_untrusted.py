"""Untrusted files: a pickle that would run code is refused; truncated or foreign files give one-line errors."""

from __future__ import annotations

import pytest
import torch

from pgdat.checkpoint import load_checkpoint, load_model, model_config, save_checkpoint
from pgdat.cli.main import main
from pgdat.errors import PgdatError


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: stands in for any code an attacker would run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _small_cnn_checkpoint(path):  # noqa: ANN001, ANN202
    from pgdat.checkpoint import build_model

    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081])
    save_checkpoint({"model": build_model(cfg).state_dict(), "model_config": cfg}, path)
    return path


def test_crafted_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_config": {}, "x": _Payload(str(marker))}, evil)
    for load in (load_checkpoint, load_model):
        with pytest.raises(PgdatError, match="refused to load .*evil.pt.*execute code") as info:
            load(evil)
        assert "\n" not in str(info.value)
        assert not marker.exists()
    torch.load(evil, weights_only=False)  # proof that the file really runs code when unpickled unsafely
    assert marker.exists()


def test_crafted_pickle_through_cli_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(str(marker))}, tmp_path / "evil.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "evil.pt"), "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat eval: error: refused to load") and "\n" not in err
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.0])
def test_truncated_checkpoint_gives_one_line_error_naming_the_file(tmp_path, capsys, keep):
    path = _small_cnn_checkpoint(tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(PgdatError, match=r"cannot read checkpoint .*last\.pt: the file is truncated") as info:
        load_model(path)
    assert "\n" not in str(info.value)
    assert main(["eval", "--checkpoint", str(path), "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat eval: error: cannot read checkpoint") and str(path) in err and "\n" not in err


def test_foreign_but_safe_files_are_refused_clearly(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(PgdatError, match="holds a Tensor, expected a dict"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(PgdatError, match="is not a pgdat checkpoint"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "run").mkdir()
    with pytest.raises(PgdatError, match="has no checkpoint"):
        load_model(tmp_path / "run")


def test_intact_checkpoint_round_trips(tmp_path):
    model = load_model(_small_cnn_checkpoint(tmp_path / "ok.pt"))
    assert not model.training
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
