"""pgdat.load_model accepts the forms users type: which='best'/'last'/'init' on a run directory."""

from __future__ import annotations

import pytest
import torch

import pgdat
from pgdat.checkpoint import load_checkpoint
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.training import Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):  # noqa: ANN001, ANN201
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("run")
    Trainer(load_config("default", [*TINY, "train.epochs=1", "eval.final_attacks=clean"]), out, callbacks=[]).fit()
    return out


@pytest.mark.parametrize("which", ["best", "last", "init"])
def test_which_names_a_checkpoint_of_the_run(run, which):
    model = pgdat.load_model(run, which=which)
    saved = load_checkpoint(run / f"{which}.pt")["model"]
    assert not model.training
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_init_differs_from_the_trained_weights(run):
    init, last = pgdat.load_model(run, which="init").state_dict(), pgdat.load_model(run, which="last").state_dict()
    assert any(not torch.equal(init[k], last[k]) for k in init)


def test_bad_which_names_the_valid_values(run):
    with pytest.raises(PgdatError, match=r"unknown which='bets'; valid: model, ema, best, last, init"):
        pgdat.load_model(run, which="bets")
    with pytest.raises(PgdatError, match=r"takes a run directory"):
        pgdat.load_model(run / "last.pt", which="best")
