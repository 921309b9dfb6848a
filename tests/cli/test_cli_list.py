"""``pgdat list``: every registered plug-in appears, with a one-line description and its options' defaults, and the
listing follows the registries (a plug-in registered at run time shows up without any edit to the listing)."""

from __future__ import annotations

import json

import pytest

from pgdat.attacks.specs import ATTACKS
from pgdat.cli.main import main
from pgdat.config.loader import RECIPES
from pgdat.data.datasets import DATASETS
from pgdat.experiments import EXPERIMENTS, load_experiments
from pgdat.methods import METHODS
from pgdat.models.registry import MODELS
from pgdat.training.callback_list import CALLBACKS
from pgdat.training.callbacks import Callback


def listing(capsys, *args: str) -> dict[str, list[dict]]:
    assert main(["list", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def names(entries: list[dict]) -> set[str]:
    return {n for e in entries for n in (e["name"], *e["aliases"])}


def test_every_registered_name_is_listed_with_a_one_line_description(capsys):
    load_experiments()
    listed = listing(capsys)
    assert names(listed["methods"]) == set(METHODS)
    assert names(listed["models"]) == set(MODELS)
    assert names(listed["attacks"]) == set(ATTACKS)
    assert names(listed["datasets"]) == set(DATASETS)
    assert names(listed["callbacks"]) == set(CALLBACKS)
    assert names(listed["experiments"]) == set(EXPERIMENTS)
    assert names(listed["recipes"]) == {str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml")}
    for category, entries in listed.items():
        for e in entries:
            assert e["description"] and "\n" not in e["description"], (category, e["name"])
            assert e["description"] != "(no description)", (category, e["name"])


def test_options_carry_the_code_defaults(capsys):
    listed = listing(capsys)
    opts = {c: {e["name"]: {o["name"]: o["default"] for o in e["options"]} for e in es} for c, es in listed.items()}
    assert opts["methods"]["trades"] == {"beta": 6.0}  # Zhang et al.'s default
    assert opts["methods"]["pgd_at"] == {}
    assert opts["models"]["wide_resnet"] == {"depth": 34, "widen_factor": 10, "dropout": 0.0}
    assert opts["callbacks"]["tensorboard"] == {"log_dir": None, "every_steps": 50}
    assert opts["callbacks"]["wandb"]["mode"] == "offline"
    assert opts["attacks"]["pgd"]["spec"].startswith("pgd-K[xR] (K steps, default 20")
    assert opts["experiments"]["deat"] == {"preset": "cpu", "seeds": None}  # seeds: the preset's default count
    cifar = next(e for e in listed["datasets"] if e["name"] == "cifar10")
    assert cifar["description"].startswith("3x32x32 images, 10 classes") and cifar["aliases"] == ["cifar-10"]
    gen = next(e for e in listed["recipes"] if e["name"] == "cifar10/trades_wrn28_gen")
    assert {o["name"]: o["default"] for o in gen["options"]}["model"] == "wrn28_10"


def test_a_plugin_registered_at_run_time_is_listed(capsys):
    class Probe(Callback):
        """Counts nothing, for the listing test. Second sentence not shown."""

        def __init__(self, window: int = 7, label: str = "x") -> None:
            self.window, self.label = window, label

    CALLBACKS.register("listing_probe")(Probe)
    try:
        assert main(["list", "callbacks"]) == 0
        out = capsys.readouterr().out
    finally:
        del CALLBACKS["listing_probe"]
    assert "  listing_probe: Counts nothing, for the listing test\n" in out
    assert "options: window=7 (int); label='x' (str)" in out


@pytest.mark.parametrize("category", ["models", "methods", "recipes"])
def test_one_category_prints_only_that_category(capsys, category):
    assert main(["list", category]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{category} (") and out.count(" (") >= 1
    assert "callbacks (" not in out


def test_unknown_category_is_a_clear_error(capsys):
    assert main(["list", "optimisers"]) == 2
    err = capsys.readouterr().err
    assert "unknown category 'optimisers'" in err and "models, methods, attacks" in err and "pgdat list methods" in err


def test_methods_show_their_declared_facts(capsys):
    """Paper, reference, attacks yes/no, passes formula and value, and each option's default and range come from
    the method's registration (pgdat.methods.facts), for every method."""
    listed = listing(capsys, "methods")["methods"]
    for e in listed:
        facts = METHODS[e["name"]].facts
        assert e["facts"]["paper"] == facts.paper and e["facts"]["passes"] == facts.passes_rule, e["name"]
        assert all(o["note"] for o in e["options"]), e["name"]  # every option lists its type and range
    by_name = {e["name"]: e for e in listed}
    assert by_name["trades"]["facts"]["passes_at_10_steps"] == 12 and by_name["trades"]["facts"]["attacks"] is True
    assert by_name["standard"]["facts"]["attacks"] is False and by_name["standard"]["facts"]["passes_at_10_steps"] == 1
    assert by_name["free_at"]["facts"]["passes_at_10_steps"] == 8  # m = 8 replays, whatever the attack's steps
    assert {o["name"]: o["note"] for o in by_name["free_at"]["options"]} == {"m": "integer >= 1",
                                                                          "box": "one of clamp, project"}
    assert main(["list", "methods"]) == 0
    text = capsys.readouterr().out
    assert "      paper: Zhang et al. 2019, Theoretically Principled Trade-off" in text
    assert "https://github.com/yaodongyu/TRADES" in text
    assert "attacks: yes, small steps; passes per example: steps*restarts + 2" in text
    assert "attacks: no; passes per example: 1" in text
    assert "options: beta=6.0 (float, number >= 0)" in text
