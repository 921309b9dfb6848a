"""``pgdat`` command line: one module per subcommand, found through the COMMANDS registry."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable

from pgdat.errors import PgdatError
from pgdat.registry import Registry

# name -> (add_arguments(parser), run(args) -> exit code, one-line help)
COMMANDS: Registry[tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = (
    Registry("command"))


def register_command(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                     run: Callable[[argparse.Namespace], int]) -> None:
    """Make ``pgdat NAME`` available: ``add_arguments`` fills its parser, ``run`` executes it."""
    COMMANDS.register(name)((add_arguments, run, help_text))


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


def _load_commands() -> None:
    from pgdat.cli import analyze, report, repro, train  # noqa: F401  (each module registers itself)
    from pgdat.cli import eval as _eval  # noqa: F401
    from pgdat.cli import list as _list  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(prog="pgdat", description="PGD adversarial training and robust evaluation")
    parser.add_argument("--version", action="version", version=f"pgdat {__import__('pgdat').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _, run, _ = COMMANDS.get(args.command)
    format_warning = warnings.formatwarning
    # a warning is one line for the user ("pgdat train: warning: ..."), not a source file:line and a code excerpt
    warnings.formatwarning = lambda message, category, *_a, **_k: f"pgdat {args.command}: warning: {message}\n"
    try:
        return run(args)
    except PgdatError as e:
        print(f"pgdat {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a path the user named: keep the traceback
            raise
        print(f"pgdat {args.command}: error: cannot use {e.filename}: {e.strerror or e}; check the paths given",
              file=sys.stderr)
        return 2
    except BaseException as e:
        if not is_interrupt(e):
            raise
        print(f"pgdat {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
