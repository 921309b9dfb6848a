"""Every training method's option values are range-checked when the config is validated (before any data loads)."""

from __future__ import annotations

import inspect

import pytest

from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.methods import METHODS, build_method
from pgdat.training.validate import validate_config

NAN, INF = float("nan"), float("inf")

# (method, option, bad value): each must be refused at config validation, naming the option
BAD = [
    *[("trades", "beta", v) for v in (NAN, -1, INF, "nan", "abc", True, "8/255", [6])],
    *[("mart", "lam", v) for v in (NAN, -0.5, "five", False)],
    ("awp", "base", "nonsense"), ("awp", "base", 3), ("awp", "gamma", -0.01), ("awp", "gamma", NAN),
    ("awp", "proxy_lr", 0), ("awp", "proxy_lr", -0.01), ("awp", "start_epoch", 0), ("awp", "start_epoch", 2.5),
    ("awp", "beta", -6),
    ("fgsm_at", "alpha", 0), ("fgsm_at", "alpha", INF), ("rs_fgsm", "alpha", -1.25), ("rs_fgsm", "init_scale", -1),
    ("rs_fgsm", "init_scale", NAN), ("n_fgsm", "k", -1), ("n_fgsm", "k", NAN), ("n_fgsm", "alpha", 0),
    ("n_fgsm", "alpha", "1"),
    ("grad_align", "lam", -1), ("grad_align", "lam", NAN), ("grad_align", "lam", "none"), ("grad_align", "lam", True),
    ("grad_align", "first_point", "middle"), ("grad_align", "bn_mode", "batch"), ("free_at", "box", "wrap"),
    ("reat", "variant", "paper"), ("reat", "tail_reduction", "mean"), ("reat", "tail_sign", "minus"),
    ("reat", "penalty_weight", -0.1), ("reat", "penalty_weight", INF), ("reat", "margin", -1), ("reat", "margin", NAN),
    ("pgd_at_reweight", "beta", 1), ("pgd_at_reweight", "beta", -0.1), ("pgd_at_reweight", "beta", NAN),
    *[(m, "momentum", v) for m in ("pgd_at_te", "trades_te") for v in (1, -0.1, NAN)],
    ("pgd_at_te", "w_max", -300), ("pgd_at_te", "w_max", INF), ("pgd_at_te", "start_epoch", 0),
    ("pgd_at_te", "start_epoch", 90.5), ("pgd_at_te", "end_epoch", "150"), ("trades_te", "beta", NAN),
    ("pgd_at_switch", "before", "pgd7"), ("pgd_at_switch", "after", None),
    ("free_at", "m", 0), ("free_at", "m", 2.0),
]


def _overrides(method: str, params: dict) -> list[str]:
    """Overrides setting the method and its params; values are written in YAML flow syntax (nan as .nan)."""
    def yaml(v: object) -> str:
        if isinstance(v, float) and v != v:
            return ".nan"
        if v in (INF, -INF) and not isinstance(v, bool):
            return ".inf" if v > 0 else "-.inf"
        if isinstance(v, str):
            return repr(v)  # quoted: stays text
        if v is None:
            return "null"
        return str(v).lower() if isinstance(v, bool) else str(v)

    body = ", ".join(f"{k}: {yaml(v)}" for k, v in params.items())
    return [f"method.name={method}", f"method.params={{{body}}}"]


@pytest.mark.parametrize(("method", "option", "value"), BAD, ids=[f"{m}-{o}-{v!r}" for m, o, v in BAD])
def test_bad_option_value_is_refused_at_config_validation(method, option, value):
    cfg = load_config(None, _overrides(method, {option: value}))
    assert cfg.method.params[option] == value or value != value  # the YAML round trip kept the value (nan != nan)
    with pytest.raises(PgdatError, match=rf"method\.params: method '{method}' option {option}\b") as err:
        validate_config(cfg)
    assert value != value or repr(value) in str(err.value)  # the message shows the value given


def test_nan_written_on_the_command_line_is_refused_with_the_paper_value():
    cfg = load_config(None, ["method.name=trades", "method.params={beta: nan}"])  # YAML reads nan as text
    with pytest.raises(PgdatError, match=r"option beta must be a finite number >= 0 \(got 'nan'\); Zhang et al\. "
                                         r"use 6"):
        validate_config(cfg)


def test_option_relations_are_checked_with_defaults_filled_in():
    for params in ({"start_epoch": 150}, {"end_epoch": 90}, {"start_epoch": 20, "end_epoch": 10}):
        with pytest.raises(PgdatError, match="pgd_at_te' needs start_epoch < end_epoch"):
            validate_config(load_config(None, _overrides("pgd_at_te", params)))


GOOD = [("trades", {"beta": 0}), ("trades", {"beta": 6}), ("trades", {"beta": 1e-3}), ("mart", {"lam": 6}),
        ("awp", {"base": "trades", "gamma": 0.005, "start_epoch": 10, "beta": 6}), ("awp", {"gamma": 0}),
        ("n_fgsm", {"k": 0, "alpha": 1}), ("rs_fgsm", {"alpha": 1.25, "init_scale": 0}), ("grad_align", {"lam": None}),
        ("grad_align", {"lam": 0, "first_point": "adv"}), ("reat", {"variant": "as_released", "tail_sign": None}),
        ("reat", {"tail_reduction": "as_released", "tail_sign": "as_written", "penalty_weight": 0, "margin": 0}),
        ("pgd_at_reweight", {"beta": 0}), ("pgd_at_te", {"momentum": 0, "w_max": 0, "start_epoch": 1,
                                                          "end_epoch": 2}),
        ("trades_te", {"start_epoch": 18, "end_epoch": 30}), ("pgd_at_switch", {"before": "pgd2", "after": "none"}),
        ("free_at", {"m": 1}), ("free_at", {"box": "project"}), ("grad_align", {"bn_mode": None}),
        ("reat", {"variant": "paper_intent", "tail_reduction": "pairwise", "tail_sign": "contrastive"})]


@pytest.mark.parametrize(("method", "params"), GOOD, ids=[f"{m}-{p}" for m, p in GOOD])
def test_edge_values_in_range_pass(method, params):
    cfg = load_config(None, _overrides(method, params))
    assert cfg.method.params == params  # the edge values themselves reach validation (not defaults or text)
    validate_config(cfg)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_builds_with_its_defaults_given_explicitly(method):
    """The defaults are in range: given explicitly they pass the method's own check."""
    params = list(inspect.signature(METHODS[method]).parameters.values())[4:]
    defaults = {p.name: p.default for p in params}
    assert build_method(method, defaults).keywords == defaults  # bound to exactly the defaults
    validate_config(load_config(None, [f"method.name={method}"]))


def test_experiment_presets_method_params_validate():
    """The configs the paper experiments build with method options (see pgdat.experiments.*) pass validation."""
    from pgdat.experiments import co_features, memorization, reat, robust_overfitting

    runs = [(spec["recipe"], co_features.run_overrides(spec, eps, beta, method))
            for spec in co_features.PRESETS.values() for eps, beta, method in spec["grid"]]
    runs += [(recipe, [*ov, f"method.name={m}", *extra]) for recipe, ov in memorization.PRESETS.values()
             for m, extra in memorization.METHODS.items()]
    runs += [(recipe, [*ov, "method.name=reat", *extra]) for recipe, ov, _, _ in reat.PRESETS.values()
             for name, extra in reat.METHODS.items() if name.startswith("reat")]
    runs += [(recipe, [*ov, *_overrides("pgd_at_te", te)]) for recipe, ov, te, _ in robust_overfitting.PRESETS.values()]
    for recipe, ov in runs:
        validate_config(load_config(recipe, ov))
