"""Customer snapshot retries and auto-close of resolved tickets (durable timers)."""

from __future__ import annotations


def timer_handlers(app) -> dict:
    return {}
