"""Injected non-robust features (Ortiz-Jimenez et al., co_features ``data/injection.py``), for any (C, H, W) and
class count: x~ = x + (beta/255) * v_y, with class-wise carriers v_c in {-1, +1}^(C, H, W) taken as the signs of
low-frequency 2-D DCT basis images (the same image in every channel). The same V and beta are applied to the train,
validation and test splits.

Carriers (``carriers``): ``paired`` (the paper's): m = ceil(K/2) distinct patterns from the DCT coefficients
(0,1), (1,0), (1,1), (2,1), (1,2), then the zig-zag order; class c + m gets -v_c. ``general`` (the repo's
``create_general_linf_carrier``): one zig-zag coefficient per class (DC skipped), no pairing.

Storage: injected splits hold **float32** images in pixel units (``Split`` accepts float32; loaders and evaluation
keep float images as they are). With ``clip_injected=False`` (the repo default) images may lie up to beta outside
[0, 1] and the bundle declares it (``info.in_unit_box = False``), so a run with ``attack.box=auto`` trains and
evaluates with no image box: perturbations are held to the eps-ball only. The repo instead clamps x~ + delta into
[0, 1], which moves an out-of-box pixel by more than eps (x~ = 1.05 forces delta = -0.05 at eps 4/255); pgdat does
not reproduce that, since such a perturbation is outside the threat model its evaluation certifies. With
``clip_injected=True`` images are clamped to [0, 1] once, at injection, and the usual [0,1] box applies. Use
:func:`out_of_box_fraction` to log how many pixels the injection pushed out of the box.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from pgdat.data.bundle import DataBundle, Split, as_unit_float
from pgdat.data.transforms import TRANSFORMS
from pgdat.errors import PgdatError

PAPER_COEFFS = ((0, 1), (1, 0), (1, 1), (2, 1), (1, 2))
CARRIERS = ("paired", "general")
PROJECTORS = ("distinct", "repo")


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n) in float64: row k is the k-th cosine basis vector."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def zigzag(h: int, w: int) -> list[tuple[int, int]]:
    """(row, col) DCT coefficients in JPEG zig-zag order (anti-diagonals, alternating direction)."""
    out = []
    for s in range(h + w - 1):
        diag = [(r, s - r) for r in range(h) if 0 <= s - r < w]
        out += diag if s % 2 else diag[::-1]
    return out


def carrier_coefficients(num_classes: int, h: int, w: int, carriers: str = "paired") -> list[tuple[int, int]]:
    """The DCT coefficients of the distinct patterns: ceil(K/2) for ``paired``, K for ``general``."""
    if carriers not in CARRIERS:
        raise PgdatError(f"inject_features carriers must be one of {', '.join(CARRIERS)} (got '{carriers}')")
    m = math.ceil(num_classes / 2) if carriers == "paired" else num_classes
    first = [c for c in PAPER_COEFFS if c[0] < h and c[1] < w] if carriers == "paired" else []
    rest = [c for c in zigzag(h, w) if c != (0, 0) and c not in first]
    coeffs = (first + rest)[:m]
    if len(coeffs) < m:
        raise PgdatError(f"a {h}x{w} image has only {h * w - 1} non-DC DCT coefficients; {m} carriers needed")
    return coeffs


def make_carriers(num_classes: int, shape: tuple[int, int, int], carriers: str = "paired") -> torch.Tensor:
    """V (K, C, H, W) float32 with entries in {-1, +1}: sign of the inverse DCT of one unit coefficient, repeated
    over channels (an exact zero of the cosine, possible for some coefficients and sizes, is mapped to +1)."""
    c, h, w = shape
    dh, dw = dct_matrix(h), dct_matrix(w)
    pats = []
    for r, q in carrier_coefficients(num_classes, h, w, carriers):
        img = torch.outer(dh[r], dw[q])  # inverse DCT of the unit coefficient (r, q): D^T e_r e_q^T D
        img = torch.where(img.abs() < 1e-12, torch.ones_like(img), img.sign())
        pats.append(img)
    if carriers == "paired":
        pats = (pats + [-p for p in pats])[:num_classes]
    return torch.stack(pats).float().unsqueeze(1).expand(-1, c, -1, -1).contiguous()


def span_basis(v: torch.Tensor, projector: str = "distinct") -> torch.Tensor:
    """Orthonormal columns Q (D, r) with P = Q Q^T the projector onto span(V), V (K, C, H, W).

    ``distinct``: QR of the distinct carriers (rank ceil(K/2) for paired carriers). ``repo``: QR of all K signed
    carriers as co_features does, whose extra columns span directions unrelated to V (numerics-dependent)."""
    if projector not in PROJECTORS:
        raise PgdatError(f"inject_features projector must be one of {', '.join(PROJECTORS)} (got '{projector}')")
    flat = v.flatten(1).double()
    if projector == "distinct":
        keep = []
        for row in flat:
            if not any(torch.equal(row, k) or torch.equal(row, -k) for k in keep):  # drop v_{c+m} = -v_c
                keep.append(row)
        flat = torch.stack(keep)
    q, _ = torch.linalg.qr(flat.T)
    return q.float()


def project_out(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """x - Q Q^T x per image; x (N, C, H, W) float, q (D, r)."""
    flat = x.flatten(1)
    return (flat - (flat @ q) @ q.T).view_as(x)


def inject_split(split: Split, v: torch.Tensor, beta: float, *, q: torch.Tensor | None = None,
                 clip: bool = False, sign: float = 1.0) -> Split:
    """x~ = [x - P x] + sign * beta/255 * v_y for one split (P only when ``q`` is given); float32 images."""
    x = as_unit_float(split.x)
    if q is not None:
        x = project_out(x, q.to(x.device))
    x = x + sign * (beta / 255.0) * v.to(x.device)[split.y]
    if clip:
        x = x.clamp(0.0, 1.0)
    return Split(x.contiguous(), split.y, split.index, split.y_true)


@TRANSFORMS.register("inject_features")
def inject_features(bundle: DataBundle, *, seed: int = 0, beta: float = 8.0, carriers: str = "paired",
                    orthogonal: bool = False, projector: str = "distinct", clip_injected: bool = False,
                    reverse: bool = False) -> DataBundle:
    """Inject class-wise carriers of strength ``beta`` (0-255 scale, >= 0) into every split (train/val/test).

    orthogonal: project span(V) out of the images first (``projector`` distinct | repo). clip_injected: clamp to
    [0, 1] (default False, as the repo; the bundle then declares ``info.in_unit_box = False``). reverse: subtract
    the carrier (the repo's ``inject_reverse_*``). ``seed`` is unused (the construction is deterministic) and
    accepted for the transform interface."""
    if not (math.isfinite(beta) and beta >= 0):
        raise PgdatError(f"inject_features beta must be >= 0 on the 0-255 scale (got {beta}); e.g. beta=8")
    v = make_carriers(bundle.info.num_classes, bundle.info.shape, carriers)
    q = span_basis(v, projector) if orthogonal else None
    kw = {"q": q, "clip": clip_injected, "sign": -1.0 if reverse else 1.0}
    val = inject_split(bundle.val, v, beta, **kw) if bundle.val is not None else None
    name = f"{bundle.info.name}+inject(beta={beta:g}{',perp' if orthogonal else ''})"
    info = dataclasses.replace(bundle.info, name=name, in_unit_box=clip_injected)  # unclipped: may leave [0, 1]
    return dataclasses.replace(bundle, info=info,
                               train=inject_split(bundle.train, v, beta, **kw), val=val,
                               test=inject_split(bundle.test, v, beta, **kw))


def out_of_box_fraction(split: Split) -> float:
    """Fraction of pixels outside [0, 1] (0 for uint8 or clipped splits)."""
    x = as_unit_float(split.x)
    return float(((x < 0) | (x > 1)).float().mean()) if x.numel() else 0.0
