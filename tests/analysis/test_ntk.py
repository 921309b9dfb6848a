"""Empirical NTK: torch.func vs explicit Jacobian, kernel metrics, the NTKSnapshot callback."""

from __future__ import annotations

import pytest
import torch

from pgdat.analysis import ntk
from pgdat.errors import PgdatError
from pgdat.training.ntk_snapshot import NTKSnapshot


@pytest.mark.parametrize("kind", ["full", "trace", "logit_sum", "class:2"])
def test_torch_func_matches_explicit_jacobian(tiny_model, tiny_batch, kind):
    x = tiny_batch[0][:6]
    k_func = ntk.empirical_ntk(tiny_model, x, kind=kind, chunk=4)
    k_ref = ntk.empirical_ntk_explicit(tiny_model, x, kind=kind)
    n = 6 * 4 if kind == "full" else 6
    assert k_func.shape == (n, n)
    torch.testing.assert_close(k_func, k_ref, rtol=1e-4, atol=1e-4)
    assert torch.allclose(k_func, k_func.T, atol=1e-4)


def test_trace_is_block_trace_of_full_in_both_memory_modes(tiny_model, tiny_batch):
    x = tiny_batch[0][:5]
    full = ntk.empirical_ntk(tiny_model, x, kind="full").reshape(5, 4, 5, 4)
    for max_bytes in (0, 2**31):  # per-class loop, one jacrev pass
        trace = ntk.empirical_ntk(tiny_model, x, kind="trace", max_bytes=max_bytes)
        torch.testing.assert_close(torch.einsum("icjc->ij", full), trace, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trace_per_class_loop_on_cuda(tiny_model, tiny_batch):
    # the per-class loop is the path of any real network (PRN-18: N*C*P*4 bytes >> max_bytes); its accumulator
    # was a CPU tensor, so it failed on a GPU
    model, x = tiny_model.cuda(), tiny_batch[0][:5].cuda()
    loop = ntk.empirical_ntk(model, x, kind="trace", max_bytes=0)
    assert loop.device == x.device
    torch.testing.assert_close(loop, ntk.empirical_ntk(model, x, kind="trace"), rtol=1e-4, atol=1e-4)


def test_kernel_metrics():
    a = torch.randn(20, 8, dtype=torch.float64)
    k = a @ a.T
    assert ntk.kernel_distance(k, 3 * k) == pytest.approx(0.0, abs=1e-12)
    b = torch.randn(20, 8, dtype=torch.float64)
    assert 0 < ntk.kernel_distance(k, b @ b.T) < 1
    assert ntk.kernel_velocity([k, 3 * k, b @ b.T], [0, 1, 3])[1] == pytest.approx(ntk.kernel_distance(k, b @ b.T) / 2)
    s = ntk.spectrum(k)
    assert s["effective_rank"] <= 8 + 1e-6 and s["top_eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(k)[-1]))
    assert ntk.spectrum(torch.eye(10))["effective_rank"] == pytest.approx(10.0)
    with pytest.raises(PgdatError):
        ntk.kernel_distance(k, k[:5, :5])
    with pytest.raises(PgdatError, match="kind"):
        ntk.empirical_ntk(torch.nn.Linear(2, 2), torch.zeros(2, 2), kind="diag")


def test_bn_eval_mode_kernel_is_batch_independent(tiny_model, tiny_batch):
    x = tiny_batch[0][:6]
    k6 = ntk.empirical_ntk(tiny_model, x, kind="trace")
    k3 = ntk.empirical_ntk(tiny_model, x[:3], kind="trace")
    torch.testing.assert_close(k6[:3, :3], k3, rtol=1e-4, atol=1e-4)
    assert not tiny_model.training


def test_balanced_probe():
    y = torch.arange(100) % 4
    pos = ntk.balanced_probe(y, 20, seed=1)
    assert torch.bincount(y[pos]).tolist() == [5, 5, 5, 5]
    assert torch.equal(pos, ntk.balanced_probe(y, 20, seed=1))


def test_training_probe_gives_unit_floats_for_uint8_and_float_splits():
    from pgdat.data.bundle import Split

    g = torch.Generator().manual_seed(0)
    u8 = Split(torch.randint(0, 256, (40, 1, 4, 4), generator=g, dtype=torch.uint8), torch.arange(40) % 4)
    f32 = Split(u8.x.float() / 255, u8.y)  # a float split (e.g. after feature injection), already in pixel units
    xa, ya, ia = ntk.training_probe(u8, 8, 0, "cpu")
    xb, yb, ib = ntk.training_probe(f32, 8, 0, "cpu")
    assert xa.dtype == torch.float32 and 0 <= float(xa.min()) and float(xa.max()) <= 1
    torch.testing.assert_close(xa, xb)  # a float split is not divided by 255 a second time
    assert torch.equal(ya, yb) and torch.equal(ia, ib) and torch.bincount(ya).tolist() == [2, 2, 2, 2]


def test_ntk_snapshot_callback_writes_kernels(tmp_path, tiny_overrides):
    from pgdat.config import load_config
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    cfg = load_config("default", tiny_overrides + ["train.epochs=2", "method.name=standard", "data.n_train=128"])
    cb = NTKSnapshot(every=1, probe=8, kind="logit_sum")
    Trainer(cfg, tmp_path, callbacks=[MetricsLogger(), cb]).fit()
    snaps = ntk.load_snapshots(tmp_path)
    assert [s["epoch"] for s in snaps] == [0, 1, 2]
    rows = ntk.snapshot_rows(snaps)
    assert rows[0]["kernel_distance_to_prev"] is None
    assert all(0 < r["kernel_distance_to_prev"] < 1 for r in rows[1:])
    assert snaps[1]["kernel"].shape == (8, 8) and len(snaps[1]["probe_index"]) == 8
    import json

    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("ntk_top_eigenvalue" in m for m in logged)


def test_lambda_max_power_iteration_matches_eigendecomposition(tiny_model, tiny_batch):
    x = tiny_batch[0][:6]
    top = ntk.spectrum(ntk.empirical_ntk(tiny_model, x, kind="full"))["top_eigenvalue"]
    assert ntk.lambda_max(tiny_model, x, iters=40) == pytest.approx(top, rel=1e-3)


def test_alignment_and_polar_dynamics():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    ideal = torch.nn.functional.one_hot(y).double() @ torch.nn.functional.one_hot(y).double().T
    assert ntk.kernel_target_alignment(ideal, y) == pytest.approx(1.0)
    assert ntk.kernel_target_alignment(torch.eye(6), y) < 1.0
    a = torch.randn(6, 3, dtype=torch.float64)
    ks = [torch.eye(6, dtype=torch.float64), a @ a.T]
    polar = ntk.polar_dynamics(ks)
    assert polar[0] == {"radius": 0.0, "angle": 0.0} and polar[1]["radius"] == pytest.approx(1.0)


def test_fresh_run_ignores_a_stale_epoch0_snapshot_in_its_folder(tmp_path, tiny_overrides):
    # a fresh run (epoch 0) into a folder holding another run's ntk/epoch_0.pt must measure its own init kernel:
    # the stale kernel would become the reference of epoch 1's ntk_velocity (read by attack_switch)
    from pgdat.checkpoint import save_checkpoint
    from pgdat.config import load_config
    from pgdat.training import Trainer

    cfg = load_config("default", tiny_overrides + ["train.epochs=1", "method.name=standard", "data.n_train=128",
                                                   "eval.final_attacks=clean", "eval.n_final=20"])

    def velocity(out):
        trainer = Trainer(cfg, out, callbacks=[NTKSnapshot(probe=6, kind="logit_sum")])
        trainer.fit()
        return trainer.history[-1]["ntk_velocity"], ntk.load_snapshot(out / "ntk" / "epoch_0.pt")["kernel"]

    v_ref, k0_ref = velocity(tmp_path / "clean")
    stale = tmp_path / "stale" / "ntk"
    stale.mkdir(parents=True)
    save_checkpoint({"epoch": 0, "kernel": 3.0 * torch.eye(6), "spectrum": {}}, stale / "epoch_0.pt")
    v, k0 = velocity(tmp_path / "stale")
    assert v == pytest.approx(v_ref, rel=1e-5)
    torch.testing.assert_close(k0, k0_ref)
