"""Empirical neural tangent kernel (eNTK) of a model on a probe set, kernel metrics, and a Trainer callback.

With f_theta: R^d -> R^C the logits and J(x) = df(x)/dtheta (C, P), the kernel kinds on probes x_1..x_N are
``full`` ((N*C, N*C), rows ordered probe-major: index i*C + c), ``trace`` (N, N: sum_c J_c(x_i).J_c(x_j)),
``logit_sum`` (N, N: gradients of sum_c f_c) and ``class:c`` (N, N: one logit). Per-example gradients come from
``torch.func`` (``vmap`` over ``grad``/``jacrev`` of a ``functional_call``); BatchNorm is in eval mode by default so
that J(x_i) does not depend on the other probes. :func:`empirical_ntk_explicit` is the loop-over-outputs reference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

from pgdat.attacks import attack_mode
from pgdat.errors import PgdatError


def _check_kind(kind: str, num_classes: int | None = None) -> None:
    ok = kind in ("full", "trace", "logit_sum") or (kind.startswith("class:") and kind[6:].isdigit())
    if not ok:
        raise PgdatError(f"kernel kind must be full, trace, logit_sum or class:<c> (got '{kind}')")
    if num_classes is not None and kind.startswith("class:") and int(kind[6:]) >= num_classes:
        raise PgdatError(f"kernel kind '{kind}': class index must be < {num_classes}")


def _flat_grads(model: nn.Module, x: torch.Tensor, out_fn: Any, chunk: int, jac: bool) -> torch.Tensor:
    """Per-probe gradients of ``out_fn(logits)`` w.r.t. all trainable parameters, flattened: (N, P) for a scalar
    output (``jac=False``) or (N, C, P) for the logit vector (``jac=True``)."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return out_fn(functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0])

    d = vmap(jacrev(f) if jac else grad(f), in_dims=(None, 0))
    out = []
    for i in range(0, len(x), chunk):
        g = d(params, x[i:i + chunk])
        out.append(torch.cat([g[k].flatten(2 if jac else 1).float() for k in params], dim=-1))
    return torch.cat(out)


def empirical_ntk(model: nn.Module, x: torch.Tensor, *, kind: str = "trace", bn_mode: str = "eval",
                  chunk: int = 32, max_bytes: int = 2**31) -> torch.Tensor:
    """eNTK of ``model`` on probes ``x`` (N, ...) via ``torch.func``; fp32, shape per ``kind`` (module docstring).

    Memory: ``full`` holds all per-probe Jacobians (N*C*P floats); ``trace`` does too when that is at most
    ``max_bytes``, else it loops over the classes holding N*P floats at a time (C times slower).
    """
    _check_kind(kind)
    with attack_mode(model, bn_mode), torch.enable_grad():
        if kind == "full":
            j = _flat_grads(model, x, lambda z: z, chunk, jac=True)  # (N, C, P)
            j = j.flatten(0, 1)
            return j @ j.T
        if kind == "logit_sum":
            g = _flat_grads(model, x, lambda z: z.sum(), chunk, jac=False)
            return g @ g.T
        if kind.startswith("class:"):
            c = int(kind[6:])
            g = _flat_grads(model, x, lambda z: z[c], chunk, jac=False)
            return g @ g.T
        num_classes = model(x[:1]).shape[1]
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if len(x) * num_classes * n_params * 4 <= max_bytes:  # one jacrev pass: fastest when the Jacobian fits
            j = _flat_grads(model, x, lambda z: z, chunk, jac=True).flatten(1)  # (N, C * P)
            return j @ j.T
        k = torch.zeros(len(x), len(x), device=x.device)
        for c in range(num_classes):
            g = _flat_grads(model, x, lambda z, c=c: z[c], chunk, jac=False)
            k += g @ g.T
        return k


def empirical_ntk_explicit(model: nn.Module, x: torch.Tensor, *, kind: str = "trace",
                           bn_mode: str = "eval") -> torch.Tensor:
    """Reference eNTK: one ``torch.autograd.grad`` per (probe, logit), explicit Jacobian (N, C, P), then J J^T."""
    _check_kind(kind)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    with attack_mode(model, bn_mode), torch.enable_grad():
        for i in range(len(x)):
            z = model(x[i:i + 1])[0]
            rows.append(torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(z[c], params,
                                                                                          retain_graph=True)])
                                     for c in range(len(z))]))
    j = torch.stack(rows).float()  # (N, C, P)
    if kind == "full":
        jf = j.flatten(0, 1)
        return jf @ jf.T
    if kind == "trace":
        return torch.einsum("icp,jcp->ij", j, j)
    g = j.sum(1) if kind == "logit_sum" else j[:, int(kind[6:])]
    return g @ g.T


def kernel_distance(k1: torch.Tensor, k2: torch.Tensor) -> float:
    """S(K1, K2) = 1 - <K1, K2>_F / (||K1||_F ||K2||_F), in [0, 1] for PSD kernels (0: same up to scale)."""
    if k1.shape != k2.shape:
        raise PgdatError(f"kernel shapes differ: {tuple(k1.shape)} vs {tuple(k2.shape)} (use the same probe set)")
    a, b = k1.double(), k2.double()
    return float(1.0 - (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


def kernel_velocity(kernels: list[torch.Tensor], steps: list[float]) -> list[float]:
    """v(t) = S(K_t, K_{t+1}) / (step_{t+1} - step_t) for consecutive snapshots (length len(kernels) - 1)."""
    return [kernel_distance(a, b) / max(t1 - t0, 1e-12)
            for a, b, t0, t1 in zip(kernels[:-1], kernels[1:], steps[:-1], steps[1:], strict=True)]


def spectrum(k: torch.Tensor, *, top: int = 20) -> dict[str, Any]:
    """Eigen-spectrum (fp64) of a PSD kernel: top eigenvalues, top-10/20 mass (squared), effective rank
    exp(entropy of lambda / sum lambda), participation ratio (sum l)^2 / sum l^2, condition lambda_1 / lambda_k."""
    lam = torch.linalg.eigvalsh(k.double()).flip(0).clamp_min(0.0)
    total, sq = lam.sum(), (lam ** 2).sum()
    p = lam / total.clamp_min(1e-300)
    nz = p[p > 0]
    kk = min(top, len(lam))
    return {"eigenvalues": lam[:top].tolist(), "top_eigenvalue": float(lam[0]),
            "top10_mass": float((lam[:10] ** 2).sum() / sq.clamp_min(1e-300)),
            "top20_mass": float((lam[:20] ** 2).sum() / sq.clamp_min(1e-300)),
            "effective_rank": float(torch.exp(-(nz * nz.log()).sum())),
            "participation_ratio": float(total ** 2 / sq.clamp_min(1e-300)),
            "condition_top": float(lam[0] / lam[kk - 1].clamp_min(1e-300)), "n": len(lam)}


def kernel_target_alignment(k: torch.Tensor, y: torch.Tensor, *, centered: bool = False) -> float:
    """A(K, Y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) for an N x N kernel and labels ``y`` (N,) (one-hot Y);
    ``centered`` uses H K H and H Y Y^T H with H = I - 11^T / N."""
    yy = torch.nn.functional.one_hot(y.long()).double()
    t, kk = yy @ yy.T, k.double()
    if centered:
        h = torch.eye(len(y), dtype=torch.float64) - 1.0 / len(y)
        t, kk = h @ t @ h, h @ kk @ h
    return float((kk * t).sum() / (kk.norm() * t.norm()).clamp_min(1e-300))


def polar_dynamics(kernels: list[torch.Tensor]) -> list[dict[str, float]]:
    """Per snapshot t: radius ||K_t - K_0||_F / ||K_T - K_0||_F and angle arccos(1 - S(K_t, K_0)) [rad]."""
    k0, kt = kernels[0].double(), kernels[-1].double()
    span = (kt - k0).norm().clamp_min(1e-300)
    return [{"radius": float((k.double() - k0).norm() / span),
             "angle": math.acos(min(1.0, max(-1.0, 1.0 - kernel_distance(k, k0))))} for k in kernels]


def lambda_max(model: nn.Module, x: torch.Tensor, *, iters: int = 20, seed: int = 0, bn_mode: str = "eval") -> float:
    """Largest eigenvalue of the ``full`` eNTK on ``x`` without forming it: power iteration v <- J^T J v in
    parameter space (one ``jvp`` and one ``vjp`` per step); lambda = ||J v||^2 for the unit vector v."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    g = torch.Generator(device=x.device).manual_seed(seed)
    v = {k: torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype) for k, p in params.items()}
    lam = 0.0
    with attack_mode(model, bn_mode), torch.enable_grad():
        def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(model, (p, buffers), (x,))

        _, vjp_fn = vjp(f, params)
        for _ in range(iters):
            norm = torch.sqrt(sum((t.double() ** 2).sum() for t in v.values()))
            v = {k: t / norm for k, t in v.items()}
            _, jv = jvp(f, (params,), (v,))
            lam = float((jv.double() ** 2).sum())
            (v,) = vjp_fn(jv)
    return lam


def balanced_probe(y: torch.Tensor, n: int, *, seed: int = 0) -> torch.Tensor:
    """Positions (n,) of a class-balanced random subset of labels ``y`` (round-robin over classes), sorted."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    pools = [torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)] for c in classes]
    picked = [int(pool[i]) for i in range(max(len(p) for p in pools)) for pool in pools if i < len(pool)][:n]
    if len(picked) < n:
        raise PgdatError(f"probe size {n} exceeds the {len(y)} available examples")
    return torch.tensor(sorted(picked))


def training_probe(split: Any, n: int, seed: int, device: torch.device | str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed class-balanced probe of a training ``split`` (uint8 or float images): images (n, C, H, W) as unit
    floats and labels (n,) on ``device``, and the examples' source indices (n,) (CPU)."""
    from pgdat.data.bundle import as_unit_float

    pos = balanced_probe(split.y, n, seed=seed)
    return as_unit_float(split.x[pos].to(device)), split.y[pos].to(device), split.index[pos]


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """One ``ntk/epoch_E.pt`` record (see :class:`NTKSnapshot`)."""
    from pgdat.checkpoint import load_checkpoint

    return load_checkpoint(path)


def load_snapshots(run: str | Path) -> list[dict[str, Any]]:
    """All NTK snapshots of a run directory, sorted by epoch."""
    files = sorted((Path(run) / "ntk").glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise PgdatError(f"{run}/ntk has no epoch_E.pt snapshots: train with the NTKSnapshot callback")
    return [load_snapshot(f) for f in files]


def snapshot_rows(snaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-snapshot rows: epoch, kernel distance to the previous snapshot, velocity per epoch, spectrum stats."""
    rows, prev = [], None
    for s in snaps:
        dist = s.get("distance_to_prev")
        if prev is not None and "kernel" in s and "kernel" in prev:
            dist = kernel_distance(prev["kernel"], s["kernel"])
        gap = s["epoch"] - prev["epoch"] if prev is not None else math.nan
        rows.append({"epoch": s["epoch"], "kernel_distance_to_prev": dist,
                     "velocity_per_epoch": dist / gap if dist is not None else None,
                     "top_eigenvalue": s["spectrum"]["top_eigenvalue"],
                     "effective_rank": s["spectrum"]["effective_rank"]})
        prev = s
    return rows


def plot_ntk(curves: dict[str, list[dict[str, Any]]], spectra: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """Three panels over epochs: kernel distance to the previous snapshot (log y), top eigenvalue, effective rank;
    a fourth panel with each run's last eigen-spectrum (log y)."""
    from pgdat.analysis.plots import plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for i, (label, rows) in enumerate(curves.items()):
        pts = [r for r in rows if r["kernel_distance_to_prev"] is not None]
        axes[0].plot([r["epoch"] for r in pts], [r["velocity_per_epoch"] for r in pts], "o-", color=f"C{i}",
                     label=label)
        axes[1].plot([r["epoch"] for r in rows], [r["top_eigenvalue"] for r in rows], "o-", color=f"C{i}")
        axes[2].plot([r["epoch"] for r in rows], [r["effective_rank"] for r in rows], "o-", color=f"C{i}")
        last = spectra[label][-1]
        axes[3].semilogy(range(1, len(last["eigenvalues"]) + 1), last["eigenvalues"], ".-", color=f"C{i}",
                         label=f"{label} (epoch {rows[-1]['epoch']})")
    axes[0].set_yscale("log")
    for ax, t in zip(axes, ("kernel velocity S(K_t, K_t+1)/epoch", "top eigenvalue", "effective rank",
                            "spectrum at the last snapshot"), strict=True):
        ax.set_title(t, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("eigenvalue index" if "spectrum" in t else "epoch")
    axes[0].legend(fontsize=8)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyze_runs(runs: list[Path], out: Path) -> dict[str, list[dict[str, Any]]]:
    """Rows per run (see :func:`pgdat.analysis.ntk.snapshot_rows`), ``out/ntk.json`` and ``out/ntk.png``."""
    curves, spectra = {}, {}
    for run_dir in runs:
        snaps = load_snapshots(run_dir)
        curves[run_dir.name] = snapshot_rows(snaps)
        spectra[run_dir.name] = [s["spectrum"] for s in snaps]
    out.mkdir(parents=True, exist_ok=True)
    (out / "ntk.json").write_text(json.dumps({"runs": curves, "spectra": spectra}, indent=2))
    plot_ntk(curves, spectra, out / "ntk.png")
    return curves
