"""Injected non-robust features: carrier invariants, identical injection on every split, beta units, clipping,
the orthogonal variant, and the DCT low-pass model wrapper."""

from __future__ import annotations

import pytest
import torch

from pgdat.data.bundle import DataBundle, DatasetInfo, Split
from pgdat.data.injected import (
    carrier_coefficients,
    inject_features,
    make_carriers,
    out_of_box_fraction,
    span_basis,
)
from pgdat.data.transforms import apply_transforms
from pgdat.errors import PgdatError
from pgdat.models.lowpass import DCTLowPass, set_lowpass


def test_paper_carriers_at_cifar_size():
    v = make_carriers(10, (3, 32, 32))
    flat = v.flatten(1)
    assert v.shape == (10, 3, 32, 32) and set(v.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(v[5:], -v[:5]) and flat.mean(1).abs().max() == 0
    assert torch.equal(flat[:5] @ flat[:5].T, 3072 * torch.eye(5))
    assert carrier_coefficients(10, 32, 32) == [(0, 1), (1, 0), (1, 1), (2, 1), (1, 2)]
    assert (v[0, 0, :, :16] == v[0, 0, 0, 0]).all() and (v[0, 0, :, 16:] == -v[0, 0, 0, 0]).all()  # left / right


@pytest.mark.parametrize("k,shape", [(3, (1, 28, 28)), (7, (2, 9, 13)), (12, (3, 8, 8))])
def test_carriers_generalise_to_any_size_and_class_count(k, shape):
    for carriers in ("paired", "general"):
        v = make_carriers(k, shape, carriers)
        assert v.shape == (k, *shape) and set(v.unique().tolist()) <= {-1.0, 1.0}
        assert len({tuple(r.tolist()) for r in v.flatten(1)}) == k  # every class gets its own pattern
    assert span_basis(make_carriers(k, shape), "distinct").shape[1] == (k + 1) // 2


def _bundle(n=20, k=4, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(0)
    split = lambda: Split(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8),  # noqa: E731
                          torch.arange(n) % k)
    info = DatasetInfo("toy", k, shape, (0.5,) * shape[0], (0.25,) * shape[0], tuple(map(str, range(k))))
    return DataBundle(info, split(), split(), split())


def test_injection_is_beta_over_255_times_carrier_on_every_split():
    b = _bundle()
    out = inject_features(b, beta=8.0)
    v = make_carriers(4, (1, 8, 8))
    for name in ("train", "val", "test"):
        src, dst = getattr(b, name), getattr(out, name)
        assert dst.x.dtype == torch.float32 and torch.equal(dst.y, src.y) and torch.equal(dst.index, src.index)
        assert torch.allclose(dst.x - src.x.float() / 255, 8 / 255 * v[src.y], atol=1e-6)
    assert out_of_box_fraction(out.train) > 0  # no clipping by default: uint8 0 and 255 pixels are pushed out
    assert "beta=8" in out.info.name


def test_clip_and_reverse_and_transform_registry():
    b = _bundle()
    clipped = apply_transforms(b, [{"name": "inject_features", "beta": 8.0, "clip_injected": True}], seed=0)
    assert out_of_box_fraction(clipped.test) == 0 and clipped.test.x.min() >= 0 and clipped.test.x.max() <= 1
    rev = inject_features(b, beta=8.0, reverse=True)
    fwd = inject_features(b, beta=8.0)
    assert torch.allclose(fwd.train.x + rev.train.x, 2 * b.train.x.float() / 255, atol=1e-6)
    with pytest.raises(PgdatError, match="beta"):
        inject_features(b, beta=-1.0)
    with pytest.raises(PgdatError, match="carriers"):
        inject_features(b, beta=1.0, carriers="random")


def test_orthogonal_variant_removes_span_then_adds_the_carrier():
    b = _bundle()
    out = inject_features(b, beta=8.0, orthogonal=True)
    v = make_carriers(4, (1, 8, 8))
    q = span_basis(v)
    x = out.train.x.flatten(1)
    coords = x @ q  # coordinates in span(V): exactly those of beta/255 * v_y
    assert torch.allclose(coords, (8 / 255 * v[b.train.y]).flatten(1) @ q, atol=1e-5)
    repo = span_basis(v, "repo")
    assert repo.shape[1] == 4 and q.shape[1] == 2  # the repo's QR keeps K columns, two unrelated to V


def test_lowpass_block_rows_and_enabled_flag():
    x = torch.rand(2, 3, 12, 10)
    full = DCTLowPass(12)
    assert torch.allclose(full(x), x, atol=1e-5)
    block, rows = DCTLowPass(3, "block"), DCTLowPass(3, "rows")
    y = block(x)
    assert torch.allclose(block(y), y, atol=1e-5) and not torch.allclose(y, x, atol=1e-2)  # a projection
    col_const = x.mean(dim=2, keepdim=True).expand_as(x)  # constant down every column: only DCT row 0
    assert torch.allclose(rows(col_const), col_const, atol=1e-5)
    assert not torch.allclose(block(col_const), col_const, atol=1e-3)  # block also cuts the horizontal detail
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Sequential(block, torch.nn.Flatten()))
    assert set_lowpass(model, False) == 1 and torch.allclose(model(x), x.flatten(1))
    with pytest.raises(PgdatError, match="mode"):
        DCTLowPass(3, "cols")
