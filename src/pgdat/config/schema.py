"""The run configuration as frozen dataclasses. Units: eps and step sizes in [0,1] pixel units (8/255 accepted in
YAML and overrides), learning rates per optimizer step, epochs as full passes over the training split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist5k"              # dataset registry name; mnist5k is embedded (no download)
    root: str | None = None            # dataset files directory (default ~/.cache/pgdat/data or $PGDAT_DATA)
    download: bool = True              # fetch missing files from the official source (checksummed)
    val_size: int = 500                # held-out training images for model selection (Rice et al.: 1000)
    val_seed: int = 0                  # seed of the fixed validation split
    n_train: int = 0                   # use only the first N training images after the split (0 = all); quick runs
    batch_size: int = 128              # training batch size (global; split across DDP ranks)
    augment: str = "auto"              # auto (dataset default) | none | crop | flip | crop_flip
    crop_padding: int = 4              # zero padding of the random crop, pixels
    drop_last: bool = True             # drop the last short training batch
    transforms: tuple[dict[str, Any], ...] = ()  # dataset transforms in order, e.g. [{name: label_noise, rate: 1.0}]
    extra: dict[str, Any] = field(default_factory=dict)  # extra training images mixed into every batch, e.g.
    #                                    {path: gen1m.npz, fraction: 0.7}: uncompressed .npz with image uint8 (N, H, W,
    #                                    C) and label (N,), memory-mapped; fraction = share of each batch; an epoch is
    #                                    a pass over the real data; optional pins sha256 and n_images are checked (the
    #                                    run records both). {} = off


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"            # model registry name
    kwargs: dict[str, Any] = field(default_factory=dict)  # architecture options, e.g. {width: 16}
    input_norm: str = "dataset"        # normalisation layer inside the model (eps stays in pixel units): dataset
    #                                    (training-split mean/std) | none (identity) | custom (norm_mean, norm_std)
    norm_mean: tuple[float, ...] = ()  # input_norm=custom: per-channel mean, pixel units
    norm_std: tuple[float, ...] = ()   # input_norm=custom: per-channel std (> 0), pixel units
    bn_var: str = "biased"             # BatchNorm2d variance for train-mode batches: biased (PyTorch, divide by m)
    #                                    | unbiased (divide by m - 1; running stats unchanged). NTK notes R1


@dataclass(frozen=True)
class AttackConfig:
    """The attack used to craft training examples (methods that attack use it)."""

    eps: float = 0.3                   # radius, pixel units
    norm: str = "linf"                 # linf | l2
    step_size: float = 0.01            # per step, pixel units
    steps: int = 40                    # gradient steps
    restarts: int = 1
    init: str = "uniform"              # zero | uniform | normal (x + 0.001 N(0, I), TRADES/MART)
    bn_mode: str = "eval"              # eval (Madry/TRADES) | train (Rice et al.) | train_frozen_stats (batch
    #                                    statistics, running statistics not updated by the attack; NTK notes R2)
    loss: str = "ce"                   # ce | cw (methods with their own inner loss, e.g. TRADES, ignore it)
    eps_warmup_epochs: float = 0.0     # ramp eps and step size linearly from 0 over this many epochs (0 = off)
    box: str = "auto"                  # pixel range of perturbed inputs, in training and evaluation: unit ([0,1])
    #                                    | none (eps-ball only, for data outside [0,1]) | auto (none when the dataset
    #                                    declares images outside [0,1], e.g. inject_features clip_injected=false)


@dataclass(frozen=True)
class MethodConfig:
    name: str = "pgd_at"               # training-method registry name
    params: dict[str, Any] = field(default_factory=dict)  # method options, e.g. {beta: 6.0} for trades


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"                  # sgd | adam
    lr: float = 0.1                    # peak learning rate
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)  # adam only
    schedule: str = "piecewise"        # constant | piecewise | multistep | cosine | cyclic
    milestones: tuple[float, ...] = (0.5, 0.75)  # piecewise: fractions of training; multistep: epochs
    gamma: float = 0.1                 # lr factor at each milestone
    peak: float = 0.5                  # cyclic: fraction of training at which lr peaks
    warmup_epochs: float = 0.0         # linear warm-up from 0, in epochs
    grad_clip: float = 0.0             # max global grad norm; 0 = off
    ema: float = 0.0                   # decay of an exponential moving average of the weights; 0 = off
    label_smoothing: float = 0.0       # smoothing s of the training CE against the labels (targets (1-s) onehot + s/K);
    #                                    methods apply it through methods.smoothing.label_ce (trades: natural term,
    #                                    pgd_at and its single-step variants); 0 = off. Wang et al. 2023 use 0.1
    deat_k: float = 1.0                # name=deat: enhancement knob k (0 = SGD exactly); notes' reading, unverified
    deat_beta: float = 0.0             # name=deat: EMA factor of the two alternating gradient buffers
    deat_normalize: bool = False       # name=deat: divide the drift by sqrt((1+k)^2 + k^2) (PNM normalisation)
    decoupled_wd: bool = False         # name=deat: decoupled weight decay (theta *= 1 - lr*wd) instead of L2 in g


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    precision: str = "auto"            # auto | fp32 | bf16 | fp16 (fp16 uses a grad scaler)
    channels_last: bool = True
    compile: bool = False              # torch.compile the model
    deterministic: bool = False        # deterministic kernels (bit-exact resume on CPU)
    checkpoint_every: int = 0          # also keep epoch_N.pt every N epochs; 0 = off
    progress: bool = True              # progress bar
    callbacks: tuple[dict[str, Any], ...] = ()  # extra callbacks, e.g. [{name: grad_norm}] (training.CALLBACKS)
    # written by pgdat train --resume --extend-epochs N, not by hand: [{at_epoch: E, from: T, to: T+N}] = epochs
    # before E (0-based) ran a T-epoch lr schedule, later ones a (T+N)-epoch one (training/extension.py)
    extensions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class EvalConfig:
    attack: str = "pgd-10"             # per-epoch robust evaluation on validation and test sets
    step_size: float | None = None     # default 2.5 * eps / steps
    n_test: int = 1000                 # test images evaluated each epoch (0 = all)
    batch_size: int = 500
    select_by: str = "val_robust_acc"  # best.pt criterion: val_robust_acc | val_clean_acc (never a test metric)
    every: int = 1                     # evaluate val/test every N epochs and on the last; best.pt is chosen among
    #                                    the evaluated epochs (validation only, as always)
    final_attacks: str = "clean,apgd-ce,apgd-t"  # final evaluation of best.pt and last.pt on the test set: a
    #                                    cascade, AutoAttack-grade by default (the reference's APGD-CE, then APGD-T
    #                                    with the DLR loss on 9 target classes); "autoattack" = standard AutoAttack
    n_final: int = 1000
    final_batch_size: int = 250        # batches of the final evaluation: 250 is the reference AutoAttack's
    #                                    run_standard_evaluation default, so a cascade of its components (random starts
    #                                    drawn per batch) reproduces the reference's plain run point by point


@dataclass(frozen=True)
class Config:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
