"""Run reports: a self-contained HTML page per set of runs, and the comparison table."""

from pgdat.report.html import render_report, write_report
from pgdat.report.runs import Run, format_table, load_run, run_passes, summary_row

__all__ = ["Run", "format_table", "load_run", "render_report", "run_passes", "summary_row", "write_report"]
