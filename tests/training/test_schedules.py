import pytest

from pgdat.config import OptimConfig
from pgdat.errors import PgdatError
from pgdat.training.schedules import lr_at


def test_piecewise_rice_recipe():
    cfg = OptimConfig(lr=0.1, schedule="piecewise", milestones=(0.5, 0.75), gamma=0.1)
    assert lr_at(cfg, 99.9, 200) == pytest.approx(0.1)
    assert lr_at(cfg, 100.0, 200) == pytest.approx(0.01)
    assert lr_at(cfg, 150.5, 200) == pytest.approx(0.001)


def test_multistep_in_1_based_epochs():
    """Milestone 75: the steps of epoch 75 (74 < t <= 75 epochs done after the step) are the first decayed ones."""
    cfg = OptimConfig(lr=0.1, schedule="multistep", milestones=(75, 90, 100), gamma=0.1)
    assert lr_at(cfg, 74.0, 120) == pytest.approx(0.1)  # the last step of epoch 74
    assert lr_at(cfg, 74.01, 120) == pytest.approx(0.01)  # the first step of epoch 75
    assert lr_at(cfg, 95, 120) == pytest.approx(0.001)


def test_cyclic_triangle_and_cosine():
    cfg = OptimConfig(lr=0.2, schedule="cyclic", peak=0.5)
    assert lr_at(cfg, 0, 30) == 0 and lr_at(cfg, 15, 30) == pytest.approx(0.2)
    assert lr_at(cfg, 7.5, 30) == pytest.approx(0.1) and lr_at(cfg, 30, 30) == pytest.approx(0.0)
    cos = OptimConfig(lr=1.0, schedule="cosine")
    assert lr_at(cos, 0, 10) == 1.0 and lr_at(cos, 5, 10) == pytest.approx(0.5) and lr_at(cos, 10, 10) < 1e-12


def test_warmup_is_linear_then_schedule():
    cfg = OptimConfig(lr=0.1, schedule="constant", warmup_epochs=2)
    assert lr_at(cfg, 1, 10) == pytest.approx(0.05) and lr_at(cfg, 3, 10) == pytest.approx(0.1)


def test_unknown_schedule():
    with pytest.raises(PgdatError, match="valid schedules: .*cyclic"):
        lr_at(OptimConfig(schedule="step"), 1, 10)


# ---- each shipped recipe's lr at every optimizer step equals its reference script's schedule (docs/fidelity.md) ----
# The references are transcribed below in their own terms (their epoch counters, their decay tests), independently of
# pgdat's schedule code; the trainer's step progress comes from the very function the trainer uses (replayed).


def _trades_cifar10(epoch: int, i: int, n: int) -> float:
    """yaodongyu/TRADES train_trades_cifar10.py adjust_learning_rate: 1-based epoch, set once per epoch;
    lr 0.1, x0.1 if epoch >= 75, x0.01 if >= 90, x0.001 if >= 100."""
    lr = 0.1
    if epoch >= 75:
        lr = 0.1 * 0.1
    if epoch >= 90:
        lr = 0.1 * 0.01
    if epoch >= 100:
        lr = 0.1 * 0.001
    return lr


def _mart_resnet(epoch: int, i: int, n: int) -> float:
    """YisenWang/MART train_resnet.py adjust_learning_rate: 1-based epoch; lr 0.01, x0.001 if epoch >= 100,
    elif >= 90 x0.01, elif >= 75 x0.1."""
    if epoch >= 100:
        return 0.01 * 0.001
    if epoch >= 90:
        return 0.01 * 0.01
    if epoch >= 75:
        return 0.01 * 0.1
    return 0.01


def _rice_piecewise(epoch: int, i: int, n: int, epochs: int = 200, lr_max: float = 0.1) -> float:
    """locuslab/robust_overfitting train_cifar.py (and csdongxian/AWP AT_AWP/train_cifar10.py, the same code):
    0-based epoch e, lr_schedule(e + (i + 1) / len(batches)): lr_max if t / epochs < 0.5, /10 if < 0.75, else /100."""
    t = (epoch - 1) + (i + 1) / n
    if t / epochs < 0.5:
        return lr_max
    if t / epochs < 0.75:
        return lr_max / 10.0
    return lr_max / 100.0


def _madry_mnist(epoch: int, i: int, n: int) -> float:
    """MadryLab mnist_challenge train.py: tf.train.AdamOptimizer(1e-4), constant."""
    return 1e-4


RECIPE_SCHEDULES = {
    "cifar10/trades_wrn34": (_trades_cifar10, 76),
    "cifar10/mart_resnet18": (_mart_resnet, 120),
    "cifar10/pgd_at_preact18": (_rice_piecewise, 200),
    "cifar10/awp_preact18": (_rice_piecewise, 200),
    "mnist/pgd_at_smallcnn": (_madry_mnist, 83),
}


@pytest.mark.parametrize("recipe", sorted(RECIPE_SCHEDULES))
@pytest.mark.parametrize("n_batches", [7, 383])
def test_recipe_lr_of_every_step_equals_reference_script(recipe, n_batches):
    from pgdat.config import load_config
    from pgdat.training.trainer import replayed

    reference, epochs = RECIPE_SCHEDULES[recipe]
    cfg = load_config(recipe)
    assert cfg.train.epochs == epochs
    bad = []
    for e in range(epochs):  # the trainer's 0-based loop counter; the references count epoch = e + 1
        for i, t, _ in replayed(range(n_batches), 1, e, n_batches):
            got, want = lr_at(cfg.optim, t, epochs), reference(e + 1, i, n_batches)
            if got != pytest.approx(want, rel=1e-12):
                bad.append((e + 1, i, got, want))
    assert not bad, f"{len(bad)} steps differ, first (epoch, step, pgdat, reference): {bad[:3]}"


def test_multistep_milestone_is_first_decayed_epoch_also_with_replays():
    """Free-AT's replays give fractional progress inside a batch: every replay of epoch 75 is decayed, none of 74."""
    from pgdat.training.trainer import replayed

    cfg = OptimConfig(lr=1.0, schedule="multistep", milestones=(75,), gamma=0.1)
    for e, want in ((73, 1.0), (74, 0.1)):  # 0-based 73, 74 = epochs 74, 75
        lrs = [lr_at(cfg, t, 80) for _, t, _ in replayed(range(5), 8, e, 5)]
        assert len(lrs) == 40 and all(lr == pytest.approx(want) for lr in lrs)
