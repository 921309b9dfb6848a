"""``pgdat`` command line: one module per subcommand, each registering itself in :data:`pgdat.cli.commands.COMMANDS`."""

from __future__ import annotations

import argparse
import sys
import warnings

from pgdat.cli.commands import COMMANDS, is_interrupt
from pgdat.errors import PgdatError


def _load_commands() -> None:
    """Import the one list of command modules; each registers its subcommand in COMMANDS (its analyses are listed
    in :mod:`pgdat.cli.analyze`). Lazy, so ``import pgdat.cli.main`` stays light."""
    from pgdat.cli import (  # noqa: F401, A004  (register commands)
        analyze,
        eval,
        export,
        list,
        report,
        repro,
        sweep,
        train,
    )


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
