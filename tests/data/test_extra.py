"""data.extra: an external labelled image set mixed into every training batch, memory-mapped from an .npz."""

from __future__ import annotations

import hashlib
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from pgdat.checkpoint import load_checkpoint
from pgdat.config import load_config
from pgdat.data.bundle import Split
from pgdat.data.extra import draw_extra, inspect_extra, load_extra
from pgdat.data.loader import DeviceLoader
from pgdat.errors import PgdatError
from pgdat.training import Trainer
from pgdat.training.callbacks import Callback, MetricsLogger
from pgdat.training.validate import validate_config


def write_extra(path: Path, n: int, hwc: tuple[int, int, int], classes: int = 10, seed: int = 0,
                compressed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (n, *hwc), dtype=np.uint8)
    label = rng.integers(0, classes, n).astype(np.int64)
    (np.savez_compressed if compressed else np.savez)(path, image=image, label=label)
    return image, label


def real_split(n: int, chw: tuple[int, int, int]) -> Split:
    return Split(torch.zeros(n, *chw, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))


def test_half_of_each_batch_is_extra_and_matches_the_file(tmp_path):
    image, label = write_extra(tmp_path / "x.npz", 2000, (8, 8, 1))
    extra = load_extra({"path": str(tmp_path / "x.npz"), "fraction": 0.5}, (1, 8, 8), 10)
    loader = DeviceLoader(real_split(600, (1, 8, 8)), 64, drop_last=True, extra=extra, return_index=True)
    batches = list(loader)
    assert len(batches) == 600 // 32  # an epoch is one pass over the real data: 32 real images per batch
    picked = []
    for x, y, idx in batches:
        is_extra = idx >= 600
        share = is_extra.float().mean().item()
        assert abs(share - 0.5) <= 1 / 64  # round(64 * 0.5) = 32 exactly: no sampling error at all
        rows = (idx[is_extra] - 600).numpy()
        assert torch.equal(y[is_extra], torch.from_numpy(label[rows]))
        pixels = (x[is_extra] * 255).round().to(torch.uint8)
        assert torch.equal(pixels, torch.from_numpy(image[rows]).permute(0, 3, 1, 2))
        assert torch.all(x[~is_extra] == 0)  # the real images are the (all-zero) split's
        picked.append(rows)
    rows = np.concatenate(picked)
    assert len(set(rows.tolist())) == len(rows)  # without replacement within an epoch
    # drawn uniformly over the file: the mean row is N/2 within 5 standard errors
    assert abs(rows.mean() - 999.5) < 5 * 2000 / math.sqrt(12 * len(rows))


def test_extra_draws_are_seeded_and_resumable(tmp_path):
    write_extra(tmp_path / "x.npz", 500, (8, 8, 1))
    extra = load_extra({"path": str(tmp_path / "x.npz"), "fraction": 0.25}, (1, 8, 8), 10)

    def epochs(loader: DeviceLoader, n: int) -> list[torch.Tensor]:
        return [torch.cat([i for _, _, i in loader]) for _ in range(n)]

    kw = dict(augment="crop_flip", crop_padding=2, drop_last=True, extra=extra, return_index=True, seed=3)
    a = DeviceLoader(real_split(100, (1, 8, 8)), 20, **kw)
    first = epochs(a, 1)
    state = a.state_dict()
    rest = epochs(a, 2)
    b = DeviceLoader(real_split(100, (1, 8, 8)), 20, **kw)
    b.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(rest, epochs(b, 2), strict=True))
    assert not torch.equal(first[0], rest[0])  # another epoch draws other extra images


def test_extra_draws_depend_on_the_epoch_seed_not_on_the_loader_history(tmp_path):
    """The trainer reseeds the loader every epoch; a resumed run's fresh loader must draw what the old one did."""
    write_extra(tmp_path / "x.npz", 500, (8, 8, 1))
    extra = load_extra({"path": str(tmp_path / "x.npz"), "fraction": 0.5}, (1, 8, 8), 10)
    kw = dict(drop_last=True, extra=extra, return_index=True)
    long_run = DeviceLoader(real_split(100, (1, 8, 8)), 20, **kw)
    for seed in (11, 12):
        long_run.reseed(seed)
        epoch = torch.cat([i for _, _, i in long_run])
    resumed = DeviceLoader(real_split(100, (1, 8, 8)), 20, **kw)
    resumed.reseed(12)
    assert torch.equal(epoch, torch.cat([i for _, _, i in resumed]))


def test_short_last_batch_keeps_the_fraction():
    picks = draw_extra(10, [4, 4, 2], np.random.default_rng(0))
    assert [len(p) for p in picks] == [4, 4, 2]
    assert sorted(np.concatenate(picks).tolist()) == sorted(set(np.concatenate(picks).tolist()))


def test_the_file_is_memory_mapped_never_loaded_whole(tmp_path):
    path = tmp_path / "big.npz"
    write_extra(path, 8000, (32, 32, 3))  # 24.6 MB of images
    size = path.stat().st_size
    tracemalloc.start()
    try:
        extra = load_extra({"path": str(path), "fraction": 0.5}, (3, 32, 32), 10)  # includes the sha256 pass
        loader = DeviceLoader(real_split(512, (3, 32, 32)), 128, drop_last=True, extra=extra, augment="crop_flip")
        n = sum(len(y) for _, y in loader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(extra.images, np.memmap)
    assert n == 512 // 64 * 128  # 64 real + 64 extra per batch, one pass over the 512 real images
    assert peak < size / 8, f"peak {peak} bytes of Python/numpy allocations for a {size}-byte file"


def test_compressed_and_malformed_files_are_refused(tmp_path):
    write_extra(tmp_path / "c.npz", 10, (8, 8, 1), compressed=True)
    with pytest.raises(PgdatError, match=r"compressed.*np\.savez\("):
        inspect_extra(tmp_path / "c.npz")
    np.savez(tmp_path / "nolabel.npz", image=np.zeros((3, 8, 8, 1), np.uint8))
    with pytest.raises(PgdatError, match="no array 'label'"):
        inspect_extra(tmp_path / "nolabel.npz")
    np.savez(tmp_path / "float.npz", image=np.zeros((3, 8, 8, 1), np.float32), label=np.zeros(3, np.int64))
    with pytest.raises(PgdatError, match="uint8"):
        inspect_extra(tmp_path / "float.npz")
    with pytest.raises(PgdatError, match="no such file"):
        inspect_extra(tmp_path / "missing.npz")
    write_extra(tmp_path / "x.npz", 10, (8, 8, 1), classes=10)
    with pytest.raises(PgdatError, match=r"labels must lie in \[0, 3\]"):
        load_extra({"path": str(tmp_path / "x.npz"), "fraction": 0.5}, (1, 8, 8), 4)


@pytest.mark.parametrize(("extra", "match"), [
    ({"path": "X", "fraction": 1.0}, "data.extra.fraction: must be a number in \\(0, 1\\)"),
    ({"path": "X"}, "data.extra.fraction: is required"),
    ({"path": "X", "fraction": 0.5, "ratio": 1}, "data.extra has no option ratio; valid options: path, fraction"),
    ({"path": "X", "fraction": 0.5, "sha256": "abc"}, "data.extra.sha256: must be 64"),
    ({"path": "X", "fraction": 0.001}, "at least one real and one extra image"),
])
def test_config_validation_names_the_key(tmp_path, extra, match):
    write_extra(tmp_path / "x.npz", 10, (28, 28, 1))
    extra = {k: str(tmp_path / "x.npz") if v == "X" else v for k, v in extra.items()}
    with pytest.raises(PgdatError, match=match):
        validate_config(load_config("default", [f"data.extra={json.dumps(extra)}"]))


def test_config_validation_checks_the_image_size(tmp_path):
    write_extra(tmp_path / "x.npz", 10, (32, 32, 3))
    cfg = load_config("default", [f"data.extra={{path: {tmp_path / 'x.npz'}, fraction: 0.5}}"])
    with pytest.raises(PgdatError, match="32x32x3 .* but mnist5k's are 28x28x1"):
        validate_config(cfg)


class StepCounter(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, run, out) -> None:
        self.steps += 1


@pytest.mark.slow
def test_trainer_records_the_extra_set_and_refuses_a_changed_file(tmp_path, tiny_overrides):
    path = tmp_path / "gen.npz"
    write_extra(path, 300, (28, 28, 1))
    over = [*tiny_overrides, "train.epochs=1", "data.batch_size=64", "eval.final_attacks=clean",
            f"data.extra={{path: {path}, fraction: 0.25}}"]
    counter = StepCounter()
    Trainer(load_config("default", over), tmp_path / "run", callbacks=[MetricsLogger(), counter]).fit()
    assert counter.steps == 384 // 48  # n_train real images, 48 real + 16 extra per batch
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    want = {"path": str(path), "fraction": 0.25, "sha256": digest, "n_images": 300}
    header = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert header["data_extra"] == want
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["data"]["extra"] == want
    write_extra(path, 300, (28, 28, 1), seed=1)  # the file is replaced by other images
    with pytest.raises(PgdatError, match=r"data\.extra\.sha256 changed"):
        Trainer(load_config("default", [*over, "train.epochs=2"]), tmp_path / "run", callbacks=[], resume=True).start()


def test_wang_et_al_recipe_validates_with_its_generated_file(tmp_path):
    write_extra(tmp_path / "gen.npz", 20, (32, 32, 3))
    cfg = load_config("cifar10/trades_wrn28_gen", [f"data.extra.path={tmp_path / 'gen.npz'}"])
    validate_config(cfg)
    # Wang et al. 2023 (train-wa.py example): TRADES beta 5, label smoothing 0.1, EMA, 70% generated, WRN-28-10
    assert (cfg.method.name, cfg.method.params["beta"], cfg.optim.label_smoothing) == ("trades", 5.0, 0.1)
    assert (cfg.data.extra["fraction"], cfg.data.batch_size, cfg.model.name) == (0.7, 512, "wrn28_10")
    assert 0 < cfg.optim.ema < 1 and cfg.attack.eps == pytest.approx(8 / 255)
