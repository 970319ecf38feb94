"""The statistician's report (contract §8): ``report.html`` and ``km_summary.csv``."""

from ledger.projections.report.page import (
    HTML_NAME,
    KM_SUMMARY_NAME,
    ReportFiles,
    render_report,
    write_report,
)

__all__ = ["HTML_NAME", "KM_SUMMARY_NAME", "ReportFiles", "render_report", "write_report"]
