"""Method facts: what a training method declares about itself where it is registered.

Each method module registers its loss with :func:`register_method`, giving a :class:`MethodFacts`: its paper and
reference code, whether it attacks, its step-size class, its cost in passes per example and a rule (type and range)
for every option. Config validation, the report's cost column and ``pgdat list methods`` read these facts; nothing
else keeps a table of methods.

Counting rule for ``passes`` (the cost column), per training example and per visit of its minibatch (an epoch visits
each example once, so an epoch costs N x passes):

- a *pass* is one forward of the example through the model with autograd recording, together with the backward that
  uses it (an input-gradient step of an attack, or the outer loss, or a weight-perturbation proxy step);
- the training attack contributes steps x restarts passes (with restarts > 1 an upper bound: later starts only attack
  the examples not yet fooled);
- a pass whose gradient is differentiated again (GradAlign's double backprop) counts once, though its backward costs
  about twice a plain one;
- a method that replays a minibatch (Free-AT's ``m``) counts every replay;
- the counts are those of the steady state: after a method's warm-up (AWP's ``start_epoch``, temporal ensembling's
  ``start_epoch``, the eps warm-up) and, for a method that switches attacks, of its costlier phase.

``forwards`` counts, by the same rule, the forward-only passes run without gradients (TRADES's clean probabilities,
temporal ensembling's targets, the scoring of several restarts); they are listed apart and not in ``passes``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pgdat.errors import unknown_options_error
from pgdat.methods.base import METHODS, Method, Number, OneOf, option_checks

STEP_CLASSES = ("small", "large", "none")  # large: the method sets its own step, up to about 2 eps (RS-FGSM 1.25 eps)


@dataclass(frozen=True)
class Budget:
    """What a pass count depends on: the training attack's ``steps`` and ``restarts`` and the method's options
    (``params``, defaults filled in)."""

    steps: int
    restarts: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def attack(self, steps: int | None = None) -> int:
        """Passes of one training attack: ``steps`` (default the configured steps) x restarts."""
        return (self.steps if steps is None else steps) * self.restarts

    def scoring(self) -> int:
        """Forward-only passes that keep the best of several restarts: restarts when > 1 (an upper bound), else 0."""
        return self.restarts if self.restarts > 1 else 0


PassCount = Callable[[Budget], int]


def _scoring(b: Budget) -> int:
    return b.scoring()


SCORING_RULE = "restarts when > 1 (scoring the starts), else 0"


@dataclass(frozen=True)
class MethodFacts:
    """A method's declared facts.

    paper: the citation ("Zhang et al. 2019, TRADES"). reference: the authors' code (URL), or "" when there is none.
    passes / passes_rule: passes per example (see the module's counting rule) as a function of a :class:`Budget`
    and as the formula a reader sees ("steps*restarts + 2"). forwards / forwards_rule: the forward-only passes, the
    same way (default: the attack's restart scoring). attacks: whether the method crafts adversarial examples
    (False: attack.* is unused). step: ``small`` (the configured attack.step_size, expected <= eps), ``large`` (the
    method sets its own step, past eps allowed) or ``none`` (no attack). options: a :class:`Number` or
    :class:`OneOf` rule for every option of the loss, whose defaults stay in its signature. relation: a check across
    options, ``relation(where, options)``. one_start: why the method needs attack.restarts=1 ("" when it does not;
    a function of the options when they decide it).
    """

    paper: str
    reference: str
    passes: PassCount
    passes_rule: str
    attacks: bool = True
    step: str = "small"
    forwards: PassCount = _scoring
    forwards_rule: str = SCORING_RULE
    options: Mapping[str, Number | OneOf] = field(default_factory=dict)
    relation: Callable[[str, dict[str, Any]], None] | None = None
    one_start: str | Callable[[Mapping[str, Any]], str] = ""

    def one_start_reason(self, params: Mapping[str, Any]) -> str:
        """Why the method's attack takes exactly one start with these options (defaults filled in); "" when
        attack.restarts > 1 is fine."""
        return self.one_start(params) if callable(self.one_start) else self.one_start

    def __post_init__(self) -> None:
        if self.step not in STEP_CLASSES:
            raise ValueError(f"MethodFacts.step must be one of {', '.join(STEP_CLASSES)} (got {self.step!r})")
        if self.attacks != (self.step != "none"):
            want = "small or large" if self.attacks else "none"
            raise ValueError(f"MethodFacts: attacks={self.attacks} needs step {want} (got {self.step!r})")
        if not self.paper or not self.passes_rule:
            raise ValueError("MethodFacts needs a paper and a passes_rule")


def method_options(fn: Method) -> dict[str, Any]:
    """The options of a method's loss (its parameters after model, x, y, ctx) with their defaults."""
    return {k: p.default for k, p in list(inspect.signature(fn).parameters.items())[4:]}


def register_method(name: str, facts: MethodFacts) -> Callable[[Method], Method]:
    """Register a loss in :data:`METHODS` under ``name`` with its ``facts`` (``fn.facts``) and its option checks.

    Every option of the loss needs a rule in ``facts.options`` and every rule an option, so the listing and the
    validation cover all options; a mismatch is a programming error raised at import.
    """

    def deco(fn: Method) -> Method:
        options = set(method_options(fn))
        if options != set(facts.options):
            raise TypeError(f"method '{name}': facts.options must give one rule per option; options without a rule: "
                            f"{sorted(options - set(facts.options))}, rules without an option: "
                            f"{sorted(set(facts.options) - options)}")
        fn.__name__ = name  # the option checks' messages name the method by its registered name
        option_checks(fn, dict(facts.options), facts.relation)
        fn.facts = facts  # type: ignore[attr-defined]
        return METHODS.register(name)(fn)

    return deco


def method_facts(name: str) -> MethodFacts:
    """The facts of method ``name``; an unknown name raises a :class:`PgdatError` listing the methods."""
    return METHODS.get(name).facts  # type: ignore[attr-defined]


def budget(name: str, steps: int, restarts: int, params: Mapping[str, Any] | None = None) -> Budget:
    """The :class:`Budget` of method ``name`` with the attack's ``steps``/``restarts`` and ``params`` over its
    defaults; an option the method does not have raises a :class:`PgdatError`."""
    defaults = method_options(METHODS.get(name))
    unknown = set(params or {}) - set(defaults)
    if unknown:
        raise unknown_options_error(f"method '{name}'", unknown, defaults)
    return Budget(steps, restarts, defaults | dict(params or {}))


def passes_per_example(name: str, steps: int, restarts: int, params: Mapping[str, Any] | None = None) -> int:
    """Passes per training example of method ``name`` (the module's counting rule), e.g. 11 for pgd_at with
    steps=10, restarts=1."""
    return method_facts(name).passes(budget(name, steps, restarts, params))
