import pytest

from pgdat.config import OptimConfig
from pgdat.errors import PgdatError
from pgdat.training.schedules import lr_at


def test_piecewise_rice_recipe():
    cfg = OptimConfig(lr=0.1, schedule="piecewise", milestones=(0.5, 0.75), gamma=0.1)
    assert lr_at(cfg, 99.9, 200) == pytest.approx(0.1)
    assert lr_at(cfg, 100.0, 200) == pytest.approx(0.01)
    assert lr_at(cfg, 150.5, 200) == pytest.approx(0.001)


def test_multistep_in_epochs():
    cfg = OptimConfig(lr=0.1, schedule="multistep", milestones=(75, 90, 100), gamma=0.1)
    assert lr_at(cfg, 74.99, 120) == pytest.approx(0.1)
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
