"""The registries of ``pgdat`` subcommands and of ``pgdat analyze`` analyses, apart from the modules that fill them
(each command module registers itself here; :mod:`pgdat.cli.main` and :mod:`pgdat.cli.analyze` import them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pgdat.registry import Registry

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

# name -> (add_arguments(parser), run(args) -> exit code, one-line help)
COMMANDS: Registry[tuple[AddArguments, Run, str]] = Registry("command")
ANALYSES: Registry[tuple[AddArguments, Run, str]] = Registry("analysis")


def register_command(name: str, help_text: str, add_arguments: AddArguments) -> Callable[[Run], Run]:
    """Decorator on a command's ``run(args) -> exit code``: makes ``pgdat NAME`` available, its parser filled by
    ``add_arguments``; returns ``run`` unchanged."""
    def deco(run: Run) -> Run:
        COMMANDS.register(name)((add_arguments, run, help_text))
        return run

    return deco


def register_analysis(name: str, help_text: str, add_arguments: AddArguments) -> Callable[[Run], Run]:
    """Decorator on an analysis's ``run(args)``: makes ``pgdat analyze NAME`` available."""
    def deco(run: Run) -> Run:
        ANALYSES.register(name)((add_arguments, run, help_text))
        return run

    return deco


def is_interrupt(e: BaseException) -> bool:
    """Whether ``e`` is Ctrl-C: a KeyboardInterrupt, or an error raised while handling one (torch.save interrupted
    mid-write raises a RuntimeError from its zip writer's clean-up, with the KeyboardInterrupt as its context)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False
