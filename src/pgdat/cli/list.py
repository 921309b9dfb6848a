"""``pgdat list [models|methods|attacks|datasets|recipes|callbacks|experiments] [--json]``: what pgdat offers.

Every entry is generated from the registries (and the packaged recipe files): its description is the first paragraph
of the registered object's docstring (or of its module's), its options come from the signature (name, default,
annotation), plus what the object declares about itself (a method's ``option_rules`` ranges, a callback's optional
``requires`` packages, a dataset's info). Nothing here is a hand-kept list, so a newly registered plug-in shows up.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pgdat.cli.commands import register_command
from pgdat.errors import PgdatError


@dataclass
class Entry:
    """One listed item: name, other names it is registered under, a one-line description, options."""

    name: str
    description: str
    options: list[dict[str, Any]] = field(default_factory=list)  # {name, default, type, note}
    aliases: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # what the object declares about itself (a method's facts)


def one_line(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line (reST double backquotes dropped); ''
    when there is none."""
    para = " ".join((inspect.cleandoc(doc or "").split("\n\n") or [""])[0].split()).replace("``", "")
    return re.split(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z])", para, maxsplit=1)[0].rstrip(".")


def describe(obj: Any) -> str:
    """``obj``'s docstring summary, else its module's (methods often document themselves in the module)."""
    text = one_line(inspect.getdoc(obj) if not inspect.isclass(obj) else obj.__doc__)
    if not text:
        text = one_line(getattr(sys.modules.get(getattr(obj, "__module__", "")), "__doc__", None))
    return text or "(no description)"


def options_of(fn: Callable[..., Any], skip: int = 0, only_keyword: bool = False) -> list[dict[str, Any]]:
    """The parameters of ``fn`` after the first ``skip`` (keyword-only ones with ``only_keyword``): name, default
    (None when required) and annotation as written."""
    out = []
    for p in list(inspect.signature(fn).parameters.values())[skip:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (only_keyword and p.kind is not p.KEYWORD_ONLY):
            continue
        default = None if p.default is p.empty else p.default
        kind = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        out.append({"name": p.name, "default": default, "type": "" if p.annotation is p.empty else kind,
                    "note": "required" if p.default is p.empty else ""})
    return out


def grouped(registry: dict[str, Any]) -> list[tuple[str, list[str], Any]]:
    """(name, aliases, object) per distinct registered object, in registration order."""
    seen: dict[int, tuple[str, list[str], Any]] = {}
    for name, obj in registry.items():
        key = id(obj)
        if key in seen:
            seen[key][1].append(name)
        else:
            seen[key] = (name, [], obj)
    return list(seen.values())


def method_facts_of(name: str) -> dict[str, Any]:
    """A method's declared facts (:class:`pgdat.methods.MethodFacts`) for a listing: paper, reference, whether it
    attacks, its step class, its passes and forward-only passes per example (formula, and the value with a
    10-step single-start attack)."""
    from pgdat.methods import method_facts
    from pgdat.methods.facts import budget

    f, b = method_facts(name), budget(name, 10, 1)
    return {"paper": f.paper, "reference": f.reference, "attacks": f.attacks, "step": f.step,
            "passes": f.passes_rule, "passes_at_10_steps": f.passes(b), "forwards": f.forwards_rule,
            "one_start": f.one_start_reason(b.params)}


def list_methods() -> list[Entry]:
    from pgdat.methods import METHODS

    entries = []
    for name, aliases, fn in grouped(METHODS):
        options = options_of(fn, skip=4)
        for opt in options:  # every option has a declared rule: its type and range
            opt["note"] = fn.facts.options[opt["name"]].summary()
        entries.append(Entry(name, describe(fn), options, aliases, method_facts_of(name)))
    return entries


def list_models() -> list[Entry]:
    from pgdat.models.registry import MODELS

    return [Entry(name, describe(fn), options_of(fn, only_keyword=True), aliases)
            for name, aliases, fn in grouped(MODELS)]


def list_attacks() -> list[Entry]:
    from pgdat.attacks.specs import ATTACKS

    entries = []
    for name, aliases, (builder, steps, takes_steps) in grouped(ATTACKS):
        spec = f"{name}-K[xR] (K steps, default {steps}; R restarts, default 1)" if takes_steps else name
        run = builder(max(steps, 1), 1)
        opts = [o for o in options_of(run, only_keyword=True) if o["name"] not in ("generator", "precision")]
        opts.insert(0, {"name": "spec", "default": spec, "type": "str", "note": "as in eval.attack"})
        entries.append(Entry(name, describe(builder), opts, aliases))
    return entries


def list_datasets() -> list[Entry]:
    from pgdat.data.datasets import DATASETS

    entries = []
    for name, aliases, spec in grouped(DATASETS):
        info = spec.info
        c, h, w = info.shape
        n = len(spec.files)
        source = f"downloaded on first use, checksummed ({n} file{'s' * (n > 1)})" if n else "embedded, no download"
        text = f"{c}x{h}x{w} images, {info.num_classes} classes; {source}"
        opts = [{"name": "default_augment", "default": info.default_augment, "type": "str", "note": ""},
                {"name": "mean", "default": list(info.mean), "type": "pixel units", "note": "per channel"},
                {"name": "std", "default": list(info.std), "type": "pixel units", "note": "per channel"}]
        entries.append(Entry(name, text, opts, aliases))
    return entries


def list_callbacks() -> list[Entry]:
    from pgdat.training.callback_list import CALLBACKS

    entries = []
    for name, aliases, cls in grouped(CALLBACKS):
        options = options_of(cls.__init__, skip=1)
        needs = getattr(cls, "requires", ())
        text = describe(cls) + (f" [needs: {', '.join(needs)}]" if needs else "")
        entries.append(Entry(name, text, options, aliases))
    return entries


def list_experiments() -> list[Entry]:
    from pgdat.experiments import EXPERIMENTS, load_experiments

    load_experiments()
    entries = []
    for name, aliases, exp in grouped(EXPERIMENTS):
        presets = list(exp.default_seeds)
        seeds = ", ".join(f"{p}: {n}" for p, n in exp.default_seeds.items())
        opts = [{"name": "preset", "default": presets[0], "type": "str", "note": " | ".join(presets)},
                {"name": "seeds", "default": None, "type": "int",
                 "note": f"default per preset: {seeds}; its {len(exp.claims)} claims: pgdat repro --list"}]
        entries.append(Entry(name, exp.title or describe(exp.run), opts, aliases))
    return entries


def list_recipes() -> list[Entry]:
    """Packaged recipes: the first comment paragraph of each file, and its main settings as options."""
    from pgdat.config.loader import RECIPES, load_config

    entries = []
    for path in sorted(RECIPES.rglob("*.yaml")):
        name = str(path.relative_to(RECIPES).with_suffix(""))
        comments = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            comments.append(line.lstrip("# ").rstrip())
        cfg = load_config(name)
        settings = {"method": f"{cfg.method.name} {dict(cfg.method.params) or ''}".strip(), "model": cfg.model.name,
                    "data": f"{cfg.data.name}, batch {cfg.data.batch_size}", "train.epochs": cfg.train.epochs,
                    "attack": f"{cfg.attack.norm} eps {cfg.attack.eps:.4g} (pixel units), {cfg.attack.steps} steps"}
        opts = [{"name": k, "default": v, "type": "", "note": ""} for k, v in settings.items()]
        entries.append(Entry(name, one_line("\n".join(comments)) or "(no description)", opts))
    return entries


CATEGORIES: dict[str, Callable[[], list[Entry]]] = {
    "models": list_models, "methods": list_methods, "attacks": list_attacks, "datasets": list_datasets,
    "recipes": list_recipes, "callbacks": list_callbacks, "experiments": list_experiments,
}


def _fmt_option(o: dict[str, Any]) -> str:
    extra = ", ".join(x for x in (o["type"], o["note"]) if x)
    return f"{o['name']}={o['default']!r}" + (f" ({extra})" if extra else "")


def format_text(category: str, entries: list[Entry], width: int = 120) -> str:
    """Plain text: a header per category, then per entry its name (and aliases), description and options."""
    lines = [f"{category} ({len(entries)}):"]
    for e in entries:
        alias = f" (also {', '.join(e.aliases)})" if e.aliases else ""
        lines.append(f"  {e.name}{alias}: {e.description}")
        lines += _fmt_facts(e.facts)
        if e.options:
            lines.append("      options: " + "; ".join(_fmt_option(o) for o in e.options))
    return "\n".join(lines)


def _fmt_facts(facts: dict[str, Any]) -> list[str]:
    """A method's facts as listing lines (none for entries without facts)."""
    if not facts:
        return []
    attacks = f"yes, {facts['step']} steps" if facts["attacks"] else "no"
    return [f"      paper: {facts['paper']}" + (f" <{facts['reference']}>" if facts["reference"] else ""),
            f"      attacks: {attacks}; passes per example: {facts['passes']} (= {facts['passes_at_10_steps']} at "
            f"attack.steps=10, restarts=1); forward-only passes: {facts['forwards']}"
            + (f"; attack.restarts must be 1: {facts['one_start']}" if facts["one_start"] else "")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("category", nargs="?", default=None,
                   help=f"one of {', '.join(CATEGORIES)} (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON ({category: [entries]}) instead of text")


@register_command("list",
                  "list the models, methods, attacks, datasets, recipes, callbacks or experiments",
                  add_arguments)
def run(args: argparse.Namespace) -> int:
    if args.category is not None and args.category not in CATEGORIES:
        raise PgdatError(f"unknown category '{args.category}'; valid: {', '.join(CATEGORIES)}, e.g. pgdat list methods")
    names = [args.category] if args.category else list(CATEGORIES)
    listed = {c: CATEGORIES[c]() for c in names}
    if args.json:
        print(json.dumps({c: [asdict(e) for e in es] for c, es in listed.items()}, indent=1, default=repr))
    else:
        print("\n\n".join(format_text(c, es) for c, es in listed.items()))
    return 0
