"""Up-front semantic validation of a :class:`Config`: every value a run will use is checked before any data is
loaded or any model is built, so a bad recipe fails in a second with a message naming the key and the valid range.

Call :func:`validate_config` (raises :class:`PgdatError`); soft problems (allowed, but probably a mistake) are
returned by :func:`config_warnings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from pgdat.config.schema import Config
from pgdat.errors import PgdatError, first_option, unknown_options_error
from pgdat.methods import method_facts
from pgdat.rundir import check_run_name

SELECT_BY = ("val_robust_acc", "val_clean_acc")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _fail(key: str, problem: str) -> None:
    raise PgdatError(f"config key {key}: {problem}")


def _finite(key: str, value: float, *, lo: float | None = None, lo_open: bool = False,
            hi: float | None = None, hint: str = "") -> None:
    """Raise unless ``lo (<|<=) value <= hi`` and finite; the message names the key and the range."""
    rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    bad = not math.isfinite(value) or (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and value > hi)
    if bad:
        _fail(key, f"must be a finite number in {rng} (got {value}){'; ' + hint if hint else ''}")


def _name_in(key: str, name: str, valid: Iterable[str], kind: str | None = None) -> None:
    """``name`` must be one of ``valid`` (a Registry, whose kind names what it holds, or a tuple)."""
    kind = kind or getattr(valid, "kind", None)
    names = sorted(valid)
    if name not in names:
        plural = f"{kind}{'es' if kind.endswith('s') else 's'}" if kind else ""
        what = f"{kind} '{name}'; valid {plural}" if kind else f"value '{name}'; valid"
        _fail(key, f"unknown {what}: {', '.join(names)}")


def _check_names(cfg: Config) -> None:
    """Registry names (method, model, dataset, schedule, optimizer, attack loss, init, norm, bn_mode)."""
    from pgdat.attacks.core import BN_MODES, INITS
    from pgdat.attacks.losses import LOSSES
    from pgdat.data.datasets import DATASETS
    from pgdat.methods import METHODS
    from pgdat.models.batchnorm import BN_VARIANTS
    from pgdat.models.normalize import INPUT_NORMS
    from pgdat.models.registry import MODELS
    from pgdat.threat import BOXES, NORMS
    from pgdat.training.optim import OPTIMIZERS
    from pgdat.training.schedules import SCHEDULES

    _name_in("method.name", cfg.method.name, METHODS)
    _name_in("model.name", cfg.model.name, MODELS)
    _name_in("model.input_norm", cfg.model.input_norm, INPUT_NORMS)
    _name_in("model.bn_var", cfg.model.bn_var, BN_VARIANTS)
    _name_in("data.name", cfg.data.name, DATASETS)
    _name_in("optim.schedule", cfg.optim.schedule, SCHEDULES)
    _name_in("optim.name", cfg.optim.name, OPTIMIZERS)
    _name_in("attack.norm", cfg.attack.norm, NORMS, "norm")
    _name_in("attack.init", cfg.attack.init, INITS, "init")
    _name_in("attack.bn_mode", cfg.attack.bn_mode, BN_MODES)
    _name_in("attack.loss", cfg.attack.loss, LOSSES)
    _name_in("attack.box", cfg.attack.box, tuple(BOXES))
    _name_in("eval.select_by", cfg.eval.select_by, SELECT_BY)


def _check_attack(cfg: Config) -> None:
    """The training attack: eps > 0 when the method attacks, steps/restarts >= 1, step size > 0."""
    a = cfg.attack
    if method_facts(cfg.method.name).attacks:  # the method's declared facts (pgdat.methods.facts)
        _finite("attack.eps", a.eps, lo=0.0, lo_open=True, hint=f"method '{cfg.method.name}' attacks, so it needs "
                "a radius > 0 in pixel units, e.g. attack.eps=8/255 (or use method.name=standard)")
        _finite("attack.step_size", a.step_size, lo=0.0, lo_open=True, hint="e.g. attack.step_size=2/255")
    else:
        _finite("attack.eps", a.eps, lo=0.0)
        _finite("attack.step_size", a.step_size, lo=0.0)
    if a.norm == "linf":
        _finite("attack.eps", a.eps, lo=0.0, hi=1.0, hint="an linf radius above 1 covers the whole [0,1] image box: "
                f"did you mean {a.eps:g}/255? (attack.eps={a.eps:g}/255)")
    if a.steps < 1:
        _fail("attack.steps", f"must be an integer >= 1 (got {a.steps})")
    if a.restarts < 1:
        _fail("attack.restarts", f"must be an integer >= 1 (got {a.restarts})")
    _finite("attack.eps_warmup_epochs", a.eps_warmup_epochs, lo=0.0)


def _check_model(cfg: Config) -> None:
    """The in-model normalisation, resolved as the Trainer will (:func:`resolve_input_norm`, one value per channel of
    data.name) and built as a :class:`Normalize` layer, before any data is loaded."""
    from pgdat.data import dataset_info
    from pgdat.models.normalize import Normalize, resolve_input_norm

    m, info = cfg.model, dataset_info(cfg.data.name)
    try:
        mean, std = resolve_input_norm(m.input_norm, info.mean, info.std, m.norm_mean, m.norm_std)
        if mean is not None:
            Normalize(mean, std)
    except PgdatError as err:
        _fail("model.norm_mean", str(err))


def _check_data(cfg: Config) -> None:
    d = cfg.data
    for key, value in (("data.batch_size", d.batch_size),):
        if value < 1:
            _fail(key, f"must be an integer >= 1 (got {value})")
    for key, value in (("data.val_size", d.val_size), ("data.n_train", d.n_train), ("data.crop_padding",
                                                                                    d.crop_padding)):
        if value < 0:
            _fail(key, f"must be an integer >= 0 (got {value})")
    if d.drop_last and 0 < d.n_train < d.batch_size:
        _fail("data.batch_size", f"{d.batch_size} is larger than data.n_train={d.n_train} with data.drop_last=true: "
              f"no training batch would remain; use data.batch_size <= {d.n_train} or data.drop_last=false")
    if d.augment != "auto":
        from pgdat.data.augment import AUGMENTS

        _name_in("data.augment", d.augment, ("auto", *AUGMENTS))
    if d.extra:
        _check_extra(cfg)


def _check_extra(cfg: Config) -> None:
    """data.extra: known keys, a fraction that leaves real and extra images in every batch, well-formed pins, and
    a file whose layout and image size fit the dataset (read from its headers only, no image is loaded)."""
    from pgdat.data import dataset_info
    from pgdat.data.extra import EXTRA_KEYS, extra_per_batch, inspect_extra

    extra, example = cfg.data.extra, "data.extra={path: gen1m.npz, fraction: 0.7}"
    unknown = set(extra) - set(EXTRA_KEYS)
    if unknown:
        raise unknown_options_error("config key data.extra", unknown, EXTRA_KEYS, example)
    for key in ("path", "fraction"):
        if extra.get(key) is None:
            _fail(f"data.extra.{key}", f"is required when data.extra is set; e.g. {example}")
    if not isinstance(extra["path"], str) or not extra["path"].endswith(".npz"):
        _fail("data.extra.path", f"must be an .npz file path (got {extra['path']!r}); e.g. {example}")
    fraction = extra["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        _fail("data.extra.fraction", f"must be a number in (0, 1), the share of extra images in each batch (got "
              f"{fraction!r}); Wang et al. 2023 use 0.7")
    sha = extra.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
        _fail("data.extra.sha256", f"must be 64 lowercase hex digits (got {sha!r}), or left out")
    n = extra.get("n_images")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        _fail("data.extra.n_images", f"must be an integer >= 1 (got {n!r}), or left out")
    extra_per_batch(cfg.data.batch_size, float(fraction))  # its messages name data.extra.fraction
    image, _ = inspect_extra(extra["path"])  # ... and data.extra.path
    c, h, w = dataset_info(cfg.data.name).shape
    if tuple(image.shape[1:]) != (h, w, c):
        _fail("data.extra.path", f"{extra['path']} holds {image.shape[1]}x{image.shape[2]}x{image.shape[3]} (H, W, "
              f"C) images but {cfg.data.name}'s are {h}x{w}x{c}; give images of the training data's size")


def _check_optim_train(cfg: Config) -> None:
    o, t = cfg.optim, cfg.train
    _finite("optim.lr", o.lr, lo=0.0, lo_open=True, hint="e.g. optim.lr=0.1 for SGD, 1e-3 for Adam")
    _finite("optim.momentum", o.momentum, lo=0.0, hi=1.0)
    _finite("optim.weight_decay", o.weight_decay, lo=0.0)
    _finite("optim.gamma", o.gamma, lo=0.0, lo_open=True)
    _finite("optim.warmup_epochs", o.warmup_epochs, lo=0.0)
    _finite("optim.grad_clip", o.grad_clip, lo=0.0, hint="0 turns clipping off")
    if not (math.isfinite(o.label_smoothing) and 0 <= o.label_smoothing < 1):
        _fail("optim.label_smoothing", f"must be a finite number in [0, 1) (got {o.label_smoothing}); 0 turns it off, "
              "Wang et al. 2023 use 0.1")
    if not (o.ema == 0 or 0 < o.ema < 1):
        _fail("optim.ema", f"must be 0 (off) or in (0, 1) (got {o.ema})")
    for i, b in enumerate(o.betas):
        if not (math.isfinite(b) and 0 <= b < 1):
            _fail("optim.betas", f"each beta must be in [0, 1) (got betas[{i}]={b})")
    if not (math.isfinite(o.peak) and 0 < o.peak < 1):  # cyclic divides by peak and by 1 - peak
        _fail("optim.peak", f"must be a finite number in (0.0, 1.0) (got {o.peak}); the fraction of training at "
              "which the cyclic schedule peaks, e.g. 0.5")
    for i, m in enumerate(o.milestones):
        if not (math.isfinite(m) and m >= 0):
            _fail("optim.milestones", f"each milestone must be a finite number >= 0 (got milestones[{i}]={m})")
    if o.schedule == "piecewise" and any(m > 1 for m in o.milestones):
        _fail("optim.milestones", f"piecewise milestones are fractions of training in [0, 1] (got "
              f"{list(o.milestones)}), e.g. [0.5, 0.75]; for milestones in epochs use optim.schedule=multistep")
    if o.name == "deat":  # DiffusionEnhancedSGD's ranges (nan k or beta would pass its own check)
        _finite("optim.deat_k", o.deat_k, lo=0.0, hint="0 is plain SGD")
        if not (math.isfinite(o.deat_beta) and 0 <= o.deat_beta < 1):
            _fail("optim.deat_beta", f"must be a finite number in [0, 1) (got {o.deat_beta})")
        if not o.momentum < 1:
            _fail("optim.momentum", f"optim.name=deat needs a momentum in [0, 1) (got {o.momentum})")
    if t.epochs < 1:
        _fail("train.epochs", f"must be an integer >= 1 (got {t.epochs})")
    if t.checkpoint_every < 0:
        _fail("train.checkpoint_every", f"must be >= 0 (got {t.checkpoint_every}); 0 turns it off")
    if not _DEVICE.match(t.device):
        _fail("train.device", f"'{t.device}' is not a device; valid: auto, cpu, cuda, cuda:N, mps")
    from pgdat.precision import PRECISIONS

    _name_in("train.precision", t.precision, PRECISIONS, "precision")


def _check_eval(cfg: Config) -> None:
    from pgdat.attacks.specs import parse_attacks

    e = cfg.eval
    for key, spec in (("eval.attack", e.attack), ("eval.final_attacks", e.final_attacks)):
        try:
            parse_attacks(spec)
        except PgdatError as err:
            _fail(key, str(err))
    if e.step_size is not None:
        _finite("eval.step_size", e.step_size, lo=0.0, lo_open=True, hint="or leave it empty for 2.5*eps/steps")
    for key, size in (("eval.batch_size", e.batch_size), ("eval.final_batch_size", e.final_batch_size)):
        if size < 1:
            _fail(key, f"must be an integer >= 1 (got {size}); e.g. {key}=250")
    if e.every < 1:
        _fail("eval.every", f"must be an integer >= 1 (got {e.every}); 1 evaluates after every epoch")
    for key, value in (("eval.n_test", e.n_test), ("eval.n_final", e.n_final)):
        if value < 0:
            _fail(key, f"must be an integer >= 0 (got {value}); 0 uses the whole test set")


def _check_method_params(cfg: Config) -> None:
    """The method's options (its rules), then the attack's restarts against what the method's facts allow."""
    from pgdat.methods import build_method
    from pgdat.methods.facts import budget

    name, a = cfg.method.name, cfg.attack
    try:
        build_method(name, dict(cfg.method.params))
    except PgdatError as err:
        _fail("method.params", str(err))
    reason = method_facts(name).one_start_reason(budget(name, a.steps, a.restarts, cfg.method.params).params)
    if a.restarts != 1 and reason:
        _fail("attack.restarts", f"method '{name}' needs one attack start ({reason}); set attack.restarts=1 "
              f"(got {a.restarts})")


def _check_options(key: str, kind: str, name: str, fn: object, params: Iterable[str], skip: tuple[str, ...]) -> None:
    """Every option in ``params`` must be a keyword of ``fn`` (any is fine when ``fn`` takes ``**kwargs``)."""
    import inspect

    sig = inspect.signature(fn)  # type: ignore[arg-type]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    valid = [p for p in sig.parameters if p not in skip]
    unknown = set(params) - set(valid)
    if unknown:
        option = first_option({p.name: p.default for p in sig.parameters.values()
                               if p.name in valid and p.default is not p.empty})
        raise unknown_options_error(f"config key {key}: {kind} '{name}'", unknown, valid,
                                    f"{key}=[{{name: {name}{', ' * bool(option)}{option}}}]")


def _check_entries(key: str, entries: Iterable[dict], registry: dict, skip: tuple[str, ...]) -> None:
    """``[{name: ..., **options}]`` lists (train.callbacks, data.transforms): known names, known options."""
    for spec in entries:
        if not isinstance(spec, dict) or "name" not in spec:
            _fail(key, f"each entry needs a name, e.g. [{{name: {sorted(registry)[0]}}}] (got {spec!r})")
        _name_in(key, spec["name"], registry)
        kind = getattr(registry, "kind", "entry")
        _check_options(key, kind, spec["name"], registry[spec["name"]], [k for k in spec if k != "name"], skip)


def _check_components(cfg: Config) -> None:
    """Model options, data transforms and callbacks, which are otherwise only looked up after the data is loaded
    and the model is built."""
    import importlib
    import importlib.util

    from pgdat.data.transforms import TRANSFORMS
    from pgdat.models.registry import check_model_options
    from pgdat.training.callback_list import CALLBACKS

    try:
        check_model_options(cfg.model.name, cfg.model.kwargs)
    except PgdatError as err:
        _fail("model.kwargs", str(err))
    _check_entries("data.transforms", cfg.data.transforms, TRANSFORMS, ("bundle", "seed"))
    _check_entries("train.callbacks", cfg.train.callbacks, CALLBACKS, ())
    for spec in cfg.train.callbacks:  # optional packages a callback declares it needs (e.g. tensorboard, wandb)
        cls = CALLBACKS[spec["name"]]
        missing = [p for p in getattr(cls, "requires", ()) if importlib.util.find_spec(p) is None]
        if missing:
            _fail("train.callbacks", f"callback '{spec['name']}' needs the {', '.join(missing)} package: "
                  f"{getattr(cls, 'install_hint', 'pip install ' + ' '.join(missing))}; or remove it from the list")


def _check_extensions(cfg: Config) -> None:
    """``train.extensions`` (written by ``--extend-epochs``): a chain from_0 < to_0 = from_1 < ... = train.epochs,
    each applying from an epoch at most its ``from`` (a run is extended once it has stopped or earlier)."""
    prev, last_at = None, 0
    for k, ext in enumerate(cfg.train.extensions):
        ok = isinstance(ext, dict) and set(ext) == {"at_epoch", "from", "to"} and all(
            isinstance(v, int) and not isinstance(v, bool) for v in ext.values())
        if not ok or not (last_at <= ext["at_epoch"] <= ext["from"] < ext["to"]) or prev not in (None, ext["from"]):
            _fail(f"train.extensions[{k}]", f"{ext!r} is not an extension of the previous schedule; it is written by "
                  "pgdat train --resume RUN --extend-epochs N (e.g. {at_epoch: 10, from: 10, to: 15}): do not edit it")
        prev, last_at = ext["to"], ext["at_epoch"]
    if prev is not None and prev != cfg.train.epochs:
        _fail("train.epochs", f"{cfg.train.epochs} disagrees with train.extensions, whose last entry extends to "
              f"{prev} epochs; change the epochs of a run only with pgdat train --resume RUN --extend-epochs N")


def validate_config(cfg: Config) -> None:
    """Raise :class:`PgdatError` naming the first bad key and its valid range/names; return None when all is fine."""
    check_run_name(cfg.name)
    _check_names(cfg)
    _check_attack(cfg)
    _check_model(cfg)
    _check_data(cfg)
    _check_optim_train(cfg)
    _check_extensions(cfg)
    _check_eval(cfg)
    _check_method_params(cfg)
    _check_components(cfg)


def large_step_methods() -> list[str]:
    """The methods whose facts declare large steps (they set their own step, past eps allowed), sorted."""
    from pgdat.methods import METHODS

    return sorted(name for name in METHODS if method_facts(name).step == "large")


def config_warnings(cfg: Config) -> list[str]:
    """Allowed but suspicious settings (one message each); ``validate_config`` must pass first."""
    a, notes, epochs = cfg.attack, [], cfg.train.epochs
    if cfg.optim.warmup_epochs >= epochs:
        notes.append(f"optim.warmup_epochs {cfg.optim.warmup_epochs:g} >= train.epochs {epochs}: the learning rate "
                     "never reaches optim.lr")
    facts = method_facts(cfg.method.name)
    if not facts.attacks:
        return notes
    if a.eps_warmup_epochs >= epochs:
        notes.append(f"attack.eps_warmup_epochs {a.eps_warmup_epochs:g} >= train.epochs {epochs}: training never "
                     f"reaches attack.eps {a.eps:.4g}, which evaluation uses; shorten the warm-up "
                     "(attack.eps_warmup_epochs=0 turns it off)")
    if a.step_size > a.eps and facts.step != "large":
        notes.append(f"attack.step_size {a.step_size:.4g} > attack.eps {a.eps:.4g} with projection: every step "
                     "overshoots and is clipped back to the ball; usual is 2.5*eps/steps (2/255 at 8/255, 10 steps). "
                     f"Methods meant to step past eps (RS-FGSM 1.25 eps) are {', '.join(large_step_methods())}")
    return notes
