"""What a callback sees of a run: :class:`RunView`, a narrow, documented view built by the Trainer once its run has
started, instead of the Trainer itself.

Every field is listed below with its units and shapes. A callback reads them; it changes the run only through the
view's methods (:meth:`RunView.request_stop`, :meth:`RunView.request_rollback`, :meth:`RunView.override_attack`)
and through ``state`` (the method's ``ctx.state``, saved in checkpoints; a callback writes only its own keys). The
live counters (``epoch``, ``step``, ``stop_reason``) sit in a :class:`RunProgress` that the Trainer alone advances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.training.distributed import DistInfo

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.config import Config
    from pgdat.config.schema import AttackConfig
    from pgdat.data.bundle import DataBundle
    from pgdat.training.callbacks import Callback


@dataclass
class RunProgress:
    """The run's live counters, advanced by the Trainer only (callbacks read them through :class:`RunView`).

    epoch: epochs completed. step: optimizer steps completed in the run (replays counted; a resumed run counts on
    from its epoch boundary). stop_reason: why training ends after the current epoch (None: it goes on)."""

    epoch: int = 0
    step: int = 0
    stop_reason: str | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class RunView:
    """A run as a callback sees it; frozen: a callback can neither rebind a field nor add an attribute.

    Fields (read-only unless said otherwise):

    - ``cfg``: the resolved run config (:class:`~pgdat.config.Config`; ``data.extra`` pinned, extensions applied).
    - ``out``: the run directory (:class:`~pathlib.Path`); only the main process (``dist.is_main``) writes in it.
    - ``model``: the trained model, unwrapped (the weights checkpoints save): images (B, C, H, W) in the image box
      -> logits (B, num_classes). Its parameters' ``.grad`` hold the step's unscaled gradient in ``on_step_end``.
    - ``attack_model``: the same weights as attacks and evaluations call them (compiled under ``train.compile``,
      never DDP-wrapped); defaults to ``model``.
    - ``optimizer``: the run's optimizer (read its ``param_groups`` for the step's learning rate; do not step it).
    - ``method``: the training loss ``method(model, x, y, ctx) -> {"loss": 0-d tensor, ...}``; ``method.replays``
      optimizer steps per batch (Free-AT's minibatch replay, else 1).
    - ``data``: the run's :class:`~pgdat.data.bundle.DataBundle` (``train``, ``val`` or None, ``test``, ``info``).
    - ``device``, ``precision`` (fp32 | bf16 | fp16), ``channels_last`` (the run's memory format), ``dist``
      (:class:`~pgdat.training.distributed.DistInfo`: rank, world, ``is_main``, ``enabled``).
    - ``attack``: the training attack's config with the image box resolved (eps, step_size in pixel units of
      [0,1] images); ``box``: the image box (lo, hi) of attacks and evaluation, None for unclipped features.
    - ``n_index``: training examples an index may name (the real training set plus ``data.extra``), for methods
      that keep per-example state.
    - ``steps_per_epoch``: optimizer steps per epoch on this process (batches x replays).
    - ``history``: one metrics dict per completed epoch, oldest first (a resumed run's earlier epochs included);
      the same objects the Trainer logs to ``metrics.jsonl``: never modify them.
    - ``header``: the ``metrics.jsonl`` header (versions, git SHA, device, seed, ...), a read-only mapping.
    - ``state``: the method's ``ctx.state`` (tensors and dicts in it are saved in checkpoints): writable, each
      callback under its own keys (e.g. ``attack_switch``, ``spectrum_monitor``).
    - ``callbacks``: the run's callbacks in call order (read-only; e.g. to check that a producer runs first).
    - ``progress``: the live counters behind :attr:`epoch`, :attr:`step` and :attr:`stop_reason` (Trainer-owned).

    The Trainer sets every field; the defaults serve views built directly, e.g. to test a callback on a tiny model.
    """

    cfg: Config
    out: Path
    model: nn.Module
    attack_model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    method: Callable[..., dict[str, Any]] | None = None
    data: DataBundle | None = None
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    channels_last: bool = False
    dist: DistInfo = DistInfo()
    attack: AttackConfig | None = None
    box: tuple[float, float] | None = (0.0, 1.0)
    n_index: int = 0
    steps_per_epoch: int = 0
    history: Sequence[dict[str, Any]] = ()
    header: Mapping[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    callbacks: tuple[Callback, ...] = ()
    progress: RunProgress = field(default_factory=RunProgress)

    def __post_init__(self) -> None:
        if self.attack_model is None:
            object.__setattr__(self, "attack_model", self.model)
        if self.attack is None:
            object.__setattr__(self, "attack", self.cfg.attack)
        if not isinstance(self.header, MappingProxyType):
            object.__setattr__(self, "header", MappingProxyType(self.header))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))

    @property
    def epoch(self) -> int:
        """Epochs completed: in ``on_epoch_start``/``on_step_end`` the 0-based index of the epoch being trained, in
        ``on_epoch_metrics``/``on_epoch_end`` the 1-based number of the epoch just finished."""
        return self.progress.epoch

    @property
    def step(self) -> int:
        """Optimizer steps completed in the run (in ``on_step_end``: including the step just taken)."""
        return self.progress.step

    @property
    def stop_reason(self) -> str | None:
        """Why training ends after the current epoch (a request of some callback, or of a resumed run's last
        epoch); None while it goes on."""
        return self.progress.stop_reason

    @property
    def best_epoch(self) -> int:
        """The best checkpoint's epoch (1-based) as of the latest completed epoch; 0 before any was selected."""
        return int(self.history[-1].get("best_epoch", 0)) if self.history else 0

    def request_stop(self, reason: str) -> None:
        """End training after the current epoch (the epoch's metrics, checkpoint and callbacks still run; its row
        records ``stop_reason``). Requests of several callbacks in one epoch are all kept, joined by "; "."""
        if not isinstance(reason, str) or not reason:
            raise PgdatError(f"request_stop needs a non-empty reason (got {reason!r}), e.g. "
                             "run.request_stop('catastrophic overfitting at epoch 4')")
        old = self.progress.stop_reason
        if old is None or reason not in old.split("; "):
            self.progress.stop_reason = reason if old is None else f"{old}; {reason}"

    def request_rollback(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Load ``weights`` (a state_dict of ``model``, e.g. kept by a :class:`WeightKeeper`) into the model now,
        in place: parameters and buffers, not the optimizer state. Done in ``on_epoch_metrics`` the epoch's
        checkpoint holds the restored weights."""
        self.model.load_state_dict(dict(weights))

    def override_attack(self, preset: str) -> None:
        """Every later ``craft()`` of the method uses attack preset ``preset`` (``pgdat.methods.base.ATTACK_PRESETS``,
        e.g. ``pgd2``) instead of its configured attack; kept in ``state`` (saved in checkpoints), so a resumed run
        keeps it. Methods that do not craft (e.g. free_at) are unaffected."""
        from pgdat.methods.base import ATTACK_OVERRIDE, ATTACK_PRESETS

        ATTACK_PRESETS.get(preset)  # an unknown preset fails now, naming the valid ones
        self.state[ATTACK_OVERRIDE] = {"preset": preset, "since_epoch": self.epoch}
