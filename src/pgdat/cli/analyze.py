"""``pgdat analyze NAME RUN_OR_CHECKPOINT ...``: analyses over trained runs (registry: ``cli.commands.ANALYSES``)."""

from __future__ import annotations

import argparse

from pgdat.cli.commands import ANALYSES, register_command


def _load() -> None:
    # each registers its analysis; this order is the order of `pgdat analyze --help`
    from pgdat.cli import analyze_criticality, analyze_overfitting, analyze_induced, analyze_ntk  # noqa: F401, I001


def add_arguments(p: argparse.ArgumentParser) -> None:
    _load()
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    for name, (add, _, help_text) in ANALYSES.items():
        add(sub.add_parser(name, help=help_text, description=help_text))


@register_command("analyze", "analyses over trained runs and checkpoints", add_arguments)
def run(args: argparse.Namespace) -> int:
    if args.analysis is None:
        print("analyses: " + (", ".join(sorted(ANALYSES)) or "none"))
        return 2
    return ANALYSES.get(args.analysis)[1](args)
