"""``pgdat report RUN ... -o report.html`` and ``pgdat compare RUN ... --format md|csv|json``."""

from __future__ import annotations

import argparse

from pgdat.cli.commands import register_command


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories, or sweep directories (their runs, seeds aggregated)")
    p.add_argument("-o", "--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--title", default="pgdat report", help="title of the HTML page (default 'pgdat report')")


@register_command("report", "self-contained HTML report of one or more runs", add_report_arguments)
def run_report(args: argparse.Namespace) -> int:
    from pgdat.report import write_report
    from pgdat.report.seeds import expand_runs
    from pgdat.rundir import guard_output

    path = write_report(expand_runs(args.runs), guard_output(args.out, "-o", "report.html"), args.title)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB, self-contained)")
    return 0


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories, or sweep directories (their runs, seeds aggregated)")
    p.add_argument("--format", default="md", help="md, csv or json (default md)")


@register_command("compare",
                  "comparison table of runs (best/last robust, clean, time, passes; seeds: mean ± std (n))",
                  add_compare_arguments)
def run_compare(args: argparse.Namespace) -> int:
    from pgdat.report import format_table, load_run
    from pgdat.report.seeds import expand_runs, json_rows, table_rows, text_rows

    rows = table_rows([load_run(r) for r in expand_runs(args.runs)])  # runs differing only by seed: one row
    print(format_table(json_rows(rows) if args.format == "json" else text_rows(rows, percent=False), args.format))
    return 0
