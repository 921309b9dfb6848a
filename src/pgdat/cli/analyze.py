"""``pgdat analyze NAME RUN_OR_CHECKPOINT ...``: analyses over trained runs (registered in ANALYSES)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pgdat.cli.main import register_command
from pgdat.registry import Registry

# name -> (add_arguments(parser), run(args) -> exit code, help)
ANALYSES: Registry[tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = (
    Registry("analysis"))


def register_analysis(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                      run: Callable[[argparse.Namespace], int]) -> None:
    """Make ``pgdat analyze NAME`` available."""
    ANALYSES.register(name)((add_arguments, run, help_text))


def _load() -> None:
    import importlib
    import pkgutil

    import pgdat.analysis as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("cli_"):
            importlib.import_module(f"pgdat.analysis.{mod.name}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _load()
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    for name, (add, _, help_text) in ANALYSES.items():
        add(sub.add_parser(name, help=help_text, description=help_text))


def run(args: argparse.Namespace) -> int:
    if args.analysis is None:
        print("analyses: " + (", ".join(sorted(ANALYSES)) or "none"))
        return 2
    return ANALYSES.get(args.analysis)[1](args)


register_command("analyze", "analyses over trained runs and checkpoints", add_arguments, run)
