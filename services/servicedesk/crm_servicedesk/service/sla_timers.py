"""SLA warnings, breaches and escalations (durable timers)."""

from __future__ import annotations


def timer_handlers(app) -> dict:
    return {}
