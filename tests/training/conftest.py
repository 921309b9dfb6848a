"""A tiny training recipe on the embedded default: seconds per run."""

import pytest

TINY = [
    "data.n_train=384", "data.val_size=100", "data.batch_size=64",
    "attack.steps=2", "attack.step_size=0.15", "attack.eps_warmup_epochs=0",
    "eval.attack=pgd-3", "eval.n_test=100", "eval.final_attacks=clean,pgd-5", "eval.n_final=100",
    "train.epochs=3", "train.progress=false", "train.deterministic=true",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
