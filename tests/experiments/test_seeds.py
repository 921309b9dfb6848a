"""The seeds/sweep helper: seed offsets, grid expansion and per-seed runs."""

from __future__ import annotations

import pytest

from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.experiments.seeds import grid_points, run_seeds, seed_dir, seed_offsets, seed_override, sweep_points


def test_seed_offsets_and_bad_counts():
    assert seed_offsets(3) == [0, 1, 2]
    for bad in (0, -1, 101, 2.5, True):
        with pytest.raises(PgdatError, match=r"--seeds must be .* e\.g\. --seeds 3"):
            seed_offsets(bad)


def test_seed_override_offsets_the_configured_seed():
    cfg = load_config("default", ["train.seed=42", seed_override(42, 2)])
    assert cfg.train.seed == 44


def test_sweep_points_cover_grid_times_seeds():
    pts = sweep_points({"optim.lr": [0.1, 0.2], "data.batch_size": [64]}, [0, 1], base_seed=5)
    assert len(pts) == 4 and len({p.name for p in pts}) == 4
    assert pts[0].overrides == ("optim.lr=0.1", "data.batch_size=64", "train.seed=5")
    assert pts[-1].overrides == ("optim.lr=0.2", "data.batch_size=64", "train.seed=6") and pts[-1].seed == 1
    assert grid_points({"a": [1], "b": [2, 3]}) == [{"a": 1, "b": 2}, {"a": 1, "b": 3}]
    with pytest.raises(PgdatError, match="sweep key 'a' has no values"):
        grid_points({"a": []})


def test_run_seeds_calls_once_per_seed_with_its_folder(tmp_path):
    got = run_seeds(lambda s, d: (s, d), [0, 2], tmp_path)
    assert got == {0: (0, seed_dir(tmp_path, 0)), 2: (2, tmp_path / "seed2")}
