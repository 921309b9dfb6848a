"""Attacks. Training attacks (:func:`pgd`, :func:`fgsm`) share one ascent loop and one threat geometry;
:func:`autoattack` wraps the reference AutoAttack for evaluation; :func:`parse_attack` reads eval specs.

Registries: ATTACKS (specs.py), LOSSES (losses.py) and BN_MODES (core.py), each filled by a decorator in the module
that defines it; the imports below are the one list of those modules."""

from pgdat.attacks import core, losses, specs  # noqa: F401  (fill ATTACKS, LOSSES, BN_MODES)
from pgdat.attacks.autoattack import autoattack
from pgdat.attacks.core import BN_MODES, AttackSpec, attack_mode, check_inputs, check_labels, check_logits, perturb
from pgdat.attacks.fgsm import fgsm
from pgdat.attacks.losses import LOSSES, cross_entropy, cw_margin
from pgdat.attacks.pgd import pgd
from pgdat.attacks.specs import ATTACKS, EvalAttack, default_step_size, parse_attack, parse_attacks

__all__ = [
    "ATTACKS", "BN_MODES", "LOSSES", "AttackSpec", "EvalAttack", "attack_mode", "autoattack", "check_inputs",
    "check_labels", "check_logits", "cross_entropy", "cw_margin", "default_step_size", "fgsm", "parse_attack",
    "parse_attacks", "perturb", "pgd",
]
