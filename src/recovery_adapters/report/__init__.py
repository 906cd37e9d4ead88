"""The run report: one self-contained HTML page of a run's timeline,
failures, quarantined diffs, decisions and recovery proposals, made from the
run's events (``recovery report RUN --html FILE``)."""

from __future__ import annotations

from recovery_adapters.report.html import (
    CONTENT_SECURITY_POLICY,
    render_html,
    render_report,
)
from recovery_adapters.report.model import (
    AttemptEntry,
    DecisionEntry,
    QuarantinedDiff,
    RecoveryAnswer,
    RunReport,
    StepEntry,
    report_of,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "AttemptEntry",
    "DecisionEntry",
    "QuarantinedDiff",
    "RecoveryAnswer",
    "RunReport",
    "StepEntry",
    "render_html",
    "render_report",
    "report_of",
]
