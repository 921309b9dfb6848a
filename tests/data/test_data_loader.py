"""DeviceLoader: coverage per epoch, drop_last, seeding, resume, augmentation correctness, argument errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pgdat.data import DeviceLoader, Split, crop_flip
from pgdat.errors import PgdatError


def make_split(n: int = 50, c: int = 3, h: int = 8, w: int = 6) -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)  # no zeros: padding is recognisable
    return Split(x, torch.arange(n) % 10, torch.arange(n) + 1000)


def epoch(loader: DeviceLoader) -> list[tuple[torch.Tensor, ...]]:
    return list(loader)


def test_each_example_once_per_epoch_as_floats():
    split = make_split()
    loader = DeviceLoader(split, 16, return_index=True)
    batches = epoch(loader)
    assert len(loader) == len(batches) == 4 and [len(b[1]) for b in batches] == [16, 16, 16, 2]
    idx = torch.cat([b[2] for b in batches])
    assert sorted(idx.tolist()) == list(range(1000, 1050)) and idx.tolist() != sorted(idx.tolist())
    for x, y, i in batches:
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert torch.equal(x, split.x[i - 1000].float() / 255) and torch.equal(y, split.y[i - 1000])
    second = torch.cat([b[2] for b in epoch(loader)])
    assert sorted(second.tolist()) == sorted(idx.tolist()) and not torch.equal(second, idx)


def test_drop_last_and_no_shuffle():
    split = make_split()
    loader = DeviceLoader(split, 16, drop_last=True, shuffle=False)
    batches = epoch(loader)
    assert len(loader) == len(batches) == 3 and all(len(y) == 16 for _, y in batches)
    assert torch.equal(torch.cat([x for x, _ in batches]), split.x[:48].float() / 255)


def test_same_seed_same_batches_and_other_seed_differs():
    split = make_split()

    def run(seed: int) -> list[torch.Tensor]:
        loader = DeviceLoader(split, 8, augment="crop_flip", seed=seed)
        return [x for _ in range(2) for x, _ in loader]

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c, strict=True))


def test_state_dict_resume_reproduces_next_epoch():
    split = make_split()
    ref = DeviceLoader(split, 8, augment="crop_flip", seed=5, return_index=True)
    epoch(ref)
    state = ref.state_dict()
    expected = epoch(ref)
    resumed = DeviceLoader(split, 8, augment="crop_flip", seed=0, return_index=True)
    epoch(resumed)
    epoch(resumed)
    resumed.load_state_dict(state)
    got = epoch(resumed)
    assert resumed.epoch == ref.epoch == 2 and resumed.seed == 5
    for (xa, ya, ia), (xb, yb, ib) in zip(expected, got, strict=True):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_order_does_not_depend_on_batches_consumed():
    split = make_split()
    full, partial = DeviceLoader(split, 8, seed=3), DeviceLoader(split, 8, seed=3)
    epoch(full)
    next(iter(partial))  # abandon the first epoch after one batch
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch(full), epoch(partial), strict=True))


def test_reseed_restarts_the_stream():
    split = make_split()
    a, b = DeviceLoader(split, 8, seed=0), DeviceLoader(split, 8, seed=0)
    epoch(a)
    epoch(a)
    a.reseed(7)
    b.reseed(7)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(epoch(a), epoch(b), strict=True))


def reference_crop_flip(img: torch.Tensor, dy: int, dx: int, flip: bool, p: int) -> torch.Tensor:
    """One image (C, H, W): zero-pad by p, cut the H x W window at (dy, dx), mirror if flip."""
    h, w = img.shape[1:]
    out = F.pad(img, (p, p, p, p))[:, dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


def test_crop_flip_matches_per_image_reference():
    x = make_split(6).x
    dy, dx = torch.tensor([0, 8, 4, 3, 0, 8]), torch.tensor([0, 8, 4, 1, 8, 0])
    flip = torch.tensor([False, True, False, True, True, False])
    out = crop_flip(x, dy, dx, flip, padding=4)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(6):
        assert torch.equal(out[i], reference_crop_flip(x[i], int(dy[i]), int(dx[i]), bool(flip[i]), 4))
    assert torch.equal(out[2], x[2])  # centred window, no flip: identity
    assert torch.equal(out[0][:, 4:, 4:], x[0][:, :4, :2]) and out[0][:, :4].eq(0).all()


def _matching_shifts(out: torch.Tensor, img: torch.Tensor, p: int, flips: tuple[bool, ...]) -> list[tuple]:
    return [(dy, dx, f) for dy in range(2 * p + 1) for dx in range(2 * p + 1) for f in flips
            if torch.equal(out, reference_crop_flip(img, dy, dx, f, p).float() / 255)]


@pytest.mark.parametrize("augment", ["crop", "flip", "crop_flip"])
def test_loader_augmentation_is_a_per_image_shift_or_mirror(augment):
    split = make_split(64)
    p = 2 if "crop" in augment else 0
    loader = DeviceLoader(split, 64, augment=augment, crop_padding=2, seed=1, return_index=True)
    x, y, idx = next(iter(loader))
    flips = (False, True) if "flip" in augment else (False,)
    found = [_matching_shifts(x[i], split.x[int(idx[i]) - 1000], p, flips) for i in range(len(x))]
    assert all(found), "every output must be a shifted/mirrored copy of its source image"
    kinds = {m[0] for m in found}
    assert len(kinds) >= min(4, (2 * p + 1) ** 2 * len(flips))  # offsets and flips differ between images
    assert torch.equal(y, split.y[idx - 1000]) and x.shape == (64, 3, 8, 6) and 0 <= x.min() and x.max() <= 1


def test_flip_flips():
    x = make_split(4).x
    out = crop_flip(x, None, None, torch.tensor([True, False, True, False]), padding=4)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1]) and torch.equal(out[2], x[2].flip(-1))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"batch_size": 51, "drop_last": True}, r"batch_size must be in \[1, 50\]"),
    ({"batch_size": 8, "augment": "cutout"}, "augment must be one of none, crop, flip, crop_flip"),
    ({"batch_size": 8, "crop_padding": -1}, r"crop_padding must be an integer in \[0, 6\]"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(PgdatError, match=match):
        DeviceLoader(make_split(), **kwargs)


def test_state_from_another_device_kind_is_rejected():
    loader = DeviceLoader(make_split(), 8)
    state = {**loader.state_dict(), "generator_device": "cuda"}
    with pytest.raises(PgdatError, match="same kind of device"):
        loader.load_state_dict(state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_stays_on_device_without_host_syncs():
    loader = DeviceLoader(make_split(), 16, device="cuda", augment="crop_flip", return_index=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation during iteration raises
    try:
        batches = list(loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    x, y, idx = batches[0]
    assert x.is_cuda and y.is_cuda and idx.is_cuda and loader.generator.device.type == "cuda"
    assert sorted(torch.cat([b[2] for b in batches]).tolist()) == list(range(1000, 1050))
