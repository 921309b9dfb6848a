"""Run reports: a self-contained HTML page per set of runs, and the comparison table."""

from pgdat.report.html import render_report, write_report
from pgdat.report.runs import PASSES, Run, format_table, load_run, summary_row

__all__ = ["PASSES", "Run", "format_table", "load_run", "render_report", "summary_row", "write_report"]
