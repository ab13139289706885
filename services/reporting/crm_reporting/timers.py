"""Durable timer kinds of the reporting service and their handlers (daily score recomputation…)."""

from __future__ import annotations

from crm_reporting.app import ReportingApp


def timer_handlers(app: ReportingApp) -> dict:
    """kind -> async handler(uow, timer): "reporting.analytics.daily" recomputes every customer's scores
    as of its due time; "reporting.analytics.rerank" is the debounced ABC/RFM pass after payments."""
    from crm_reporting.service import analytics

    return {**analytics.timer_handlers(app)}
