"""Method facts: every registered method declares them, and its declared passes match a count of the model's actual
forward passes during one training step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.config import AttackConfig
from pgdat.errors import PgdatError
from pgdat.methods import METHODS, MethodFacts, StepContext, build_method, method_facts, passes_per_example
from pgdat.methods.base import Number
from pgdat.methods.facts import STEP_CLASSES, budget, method_options, register_method
from pgdat.methods.switch import SWITCH

STEPS = 10
# passes per example at steps=10, restarts=1, each from the method's documented formula (module facts.py's rule:
# attack steps x restarts input-gradient passes, plus the outer loss's passes), written out by hand here
HAND = {
    "standard": 1,                      # clean CE
    "pgd_at": STEPS + 1,                # PGD, CE(x_adv)
    "pgd_at_bsl": STEPS + 1,            # PGD, Balanced Softmax(x_adv)
    "pgd_at_reweight": STEPS + 1,       # PGD, weighted CE(x_adv)
    "reat": STEPS + 1,                  # RBL-weighted PGD, BSL + TAIL on x_adv (one forward gives both)
    "pgd_at_te": STEPS + 1,             # PGD on CE + penalty, CE + penalty on x_adv
    "pgd_at_switch": STEPS + 1,         # before the switch: the configured PGD, CE(x_adv)
    "trades": STEPS + 2,                # KL attack, CE(x) + KL(x, x_adv)
    "trades_te": STEPS + 2,             # as trades, penalty on the clean logits
    "mart": STEPS + 2,                  # PGD, BCE(x_adv) + KL(x, x_adv)
    "awp": STEPS + 1 + 1,               # PGD, base loss on the proxy, base loss at w + v
    "fgsm_at": 1 + 1,                   # one FGSM step, CE(x_adv)
    "rs_fgsm": 1 + 1,
    "n_fgsm": 1 + 1,
    "grad_align": 1 + 1 + 2,            # FGSM, CE(x_adv), grad at x, grad at x + eta (double backprop)
    "free_at": 8,                       # m = 8 replays, one pass each
}
# forward-only (no-grad) passes at restarts=1: clean probabilities, temporal-ensembling targets
HAND_FORWARDS = {"trades": 1, "trades_te": 1 + 1, "pgd_at_te": 1}
# options that put a method in its steady state for one step at epoch 0 (temporal ensembling's penalty is on)
STEADY = {"pgd_at_te": {"start_epoch": 1, "end_epoch": 2}, "trades_te": {"start_epoch": 1, "end_epoch": 2}}


def _ctx(model: nn.Module, steps: int = STEPS, restarts: int = 1) -> StepContext:
    attack = AttackConfig(eps=0.05, step_size=0.0125, steps=steps, restarts=restarts, init="uniform")
    return StepContext(attack=attack, attack_model=model, generator=torch.Generator().manual_seed(0),
                       index=torch.arange(64), n_index=64, num_classes=4, class_counts=torch.tensor([40, 30, 20, 10]))


def counted_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, params: dict, ctx: StepContext
                 ) -> tuple[float, float]:
    """(passes, forward-only passes) per example of one training step, as the trainer takes it: the method's loss
    ``replays`` times, each backpropagated, then its after-step hooks. Counted by a hook on the model's forward
    (copies of the model, such as AWP's proxy, carry the hook): examples through forwards with autograd on, and
    under no_grad, divided by the batch size."""
    seen = {True: 0, False: 0}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen[torch.is_grad_enabled()] += args[0].shape[0]

    handle = model.register_forward_pre_hook(hook)
    try:
        method = build_method(name, params)
        for _ in range(method.replays):
            ctx.after_step.clear()
            model.zero_grad(set_to_none=True)
            method(model, x, y, ctx)["loss"].backward()
            for fn in ctx.after_step:
                fn()
    finally:
        handle.remove()
    return seen[True] / len(x), seen[False] / len(x)


def test_every_registered_method_declares_its_facts():
    assert set(HAND) == set(METHODS), "a method was added or removed: add its hand-counted passes to HAND"
    for name, fn in METHODS.items():
        facts = fn.facts
        assert isinstance(facts, MethodFacts), name
        assert facts.paper and facts.passes_rule, name
        assert facts.reference == "" or facts.reference.startswith("https://"), name
        assert facts.step in STEP_CLASSES and facts.attacks == (facts.step != "none"), name
        assert set(facts.options) == set(method_options(fn)), name  # one rule per option, so listed and checked


@pytest.mark.parametrize("name", sorted(HAND))
def test_declared_passes_equal_the_hand_count(name):
    assert passes_per_example(name, STEPS, 1) == HAND[name]
    assert method_facts(name).forwards(budget(name, STEPS, 1)) == HAND_FORWARDS.get(name, 0)


def test_passes_follow_the_options_that_change_them():
    assert passes_per_example("pgd_at", 10, 1) == 11 and passes_per_example("trades", 10, 1) == 12
    assert passes_per_example("pgd_at", 7, 3) == 7 * 3 + 1
    assert passes_per_example("awp", STEPS, 1, {"base": "trades"}) == STEPS + 2 + 2  # proxy and w + v on x and x_adv
    assert passes_per_example("awp", STEPS, 1, {"gamma": 0.0}) == STEPS + 1  # no weight perturbation
    assert passes_per_example("free_at", STEPS, 1, {"m": 4}) == 4
    assert passes_per_example("grad_align", STEPS, 1, {"lam": 0.0}) == 2  # FGSM-AT
    assert passes_per_example("pgd_at_switch", STEPS, 1, {"before": "pgd2", "after": "none"}) == 2 + 1
    assert passes_per_example("pgd_at_switch", STEPS, 1, {"before": "none", "after": "fgsm"}) == 1 + 1


CASES = [(name, STEADY.get(name, {})) for name in sorted(HAND)] + [
    ("awp", {"base": "trades"}), ("awp", {"gamma": 0.0}), ("free_at", {"m": 3}), ("grad_align", {"lam": 0.0}),
    ("pgd_at_switch", {"before": "pgd2"})]


@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: str(v))
def test_declared_passes_equal_the_counted_forward_passes(tiny_model, tiny_batch, name, params):
    x, y = tiny_batch
    tiny_model.train()
    ctx = _ctx(tiny_model)
    passes, forwards = counted_step(tiny_model, x, y, name, params, ctx)
    b = budget(name, STEPS, 1, params)
    assert passes == method_facts(name).passes(b)
    assert forwards == method_facts(name).forwards(b)


def test_switch_after_phase_counts_its_preset(tiny_model, tiny_batch):
    """After the switch the cheaper preset runs: fgsm_rs, one step (the declared passes are the costlier phase's)."""
    x, y = tiny_batch
    ctx = _ctx(tiny_model)
    ctx.state[SWITCH] = {"epoch": 0}
    assert counted_step(tiny_model, x, y, "pgd_at_switch", {}, ctx) == (1 + 1, 0)
    assert passes_per_example("pgd_at_switch", STEPS, 1) == STEPS + 1


@pytest.mark.parametrize("name", ["pgd_at", "mart", "fgsm_at"])
def test_restarts_are_an_upper_bound(tiny_model, tiny_batch, name):
    """With 3 restarts later starts only attack the examples not yet fooled: the count is at most the declared."""
    x, y = tiny_batch
    tiny_model.train()
    passes, forwards = counted_step(tiny_model, x, y, name, {}, _ctx(tiny_model, steps=4, restarts=3))
    facts = method_facts(name)
    assert facts.passes(budget(name, 4, 1)) <= passes <= facts.passes(budget(name, 4, 3))  # the first start is whole
    assert forwards <= facts.forwards(budget(name, 4, 3))


def test_registration_refuses_an_option_without_a_rule():
    facts = MethodFacts(paper="p", reference="", passes=lambda b: 1, passes_rule="1", options={"a": Number(lo=0)})

    def loss(model, x, y, ctx, a: float = 1.0, b: float = 2.0):  # b has no rule
        return {}

    with pytest.raises(TypeError, match=r"options without a rule: \['b'\]"):
        register_method("facts_test_method", facts)(loss)
    assert "facts_test_method" not in METHODS
    with pytest.raises(ValueError, match="attacks=False needs step none"):
        MethodFacts(paper="p", reference="", passes=lambda b: 1, passes_rule="1", attacks=False)


def test_unknown_option_message_names_option_valid_ones_and_example():
    with pytest.raises(PgdatError, match=r"method 'trades' has no option lambda; valid options: beta; "
                                         r"e\.g\. method\.params=\{beta: 6\.0\}"):
        build_method("trades", {"lambda": 1.0})
    with pytest.raises(PgdatError, match="method 'awp' has no option gama; valid options: base, gamma"):
        passes_per_example("awp", 10, 1, {"gama": 0.1})


@pytest.mark.parametrize(("name", "params"), CASES[:len(HAND)] + [("awp", {"base": "trades"})], ids=lambda v: str(v))
def test_one_start_is_declared_exactly_where_restarts_fail(tiny_model, tiny_batch, name, params):
    """A training step with attack.restarts=2 runs for every method whose facts allow restarts, and fails for each
    that declares one start (validation refuses those configs: tests/config/test_validate.py)."""
    x, y = tiny_batch
    tiny_model.train()
    reason = method_facts(name).one_start_reason(budget(name, 2, 2, params).params)
    try:
        counted_step(tiny_model, x, y, name, params, _ctx(tiny_model, steps=2, restarts=2))
    except (RuntimeError, PgdatError):
        assert reason, f"{name} fails with restarts=2 but its facts allow restarts"
    else:
        assert not reason, f"{name} declares one start but runs with restarts=2"
