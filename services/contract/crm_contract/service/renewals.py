"""Renewal reminders and expiry of signed contracts (durable timers)."""

from __future__ import annotations


def timer_handlers(app) -> dict:
    return {}
