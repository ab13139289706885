"""Event-to-report lag under load, from the reporting service's own metrics.

The reporting consumers observe crm_consumer_lag_seconds (event occurred → applied to every read
model) for each event. Scraping the histogram before and after a Locust run and subtracting gives
the lag of the events applied during that run; crm_consumer_pending says how far behind the
streams the consumers still are when it ends (a backlog the report must still catch up on).
"""

from __future__ import annotations

import contextlib
import math
import urllib.request
from dataclasses import dataclass

LAG_BUCKET = "crm_consumer_lag_seconds_bucket"
PENDING = "crm_consumer_pending"


@dataclass(frozen=True)
class Scrape:
    buckets: dict[float, float]  # upper bound (s) -> cumulative count, every reporting consumer
    pending: float


@dataclass(frozen=True)
class Lag:
    events: int
    p50_ms: float
    p99_ms: float
    pending_after: int

    def describe(self) -> str:
        if not self.events:
            return f"no events applied, {self.pending_after} pending"
        return (
            f"{self.events} events, lag p50 ≤ {_ms(self.p50_ms)}, p99 ≤ {_ms(self.p99_ms)}, "
            f"{self.pending_after} pending at the end"
        )


def _ms(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.0f} ms"


def parse(text: str, service: str = "reporting") -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    pending = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("service") != service:
                continue
            if sample.name == PENDING:
                pending += sample.value
            elif sample.name == LAG_BUCKET:
                bound = float(sample.labels["le"])  # "+Inf" parses as inf
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Scrape(buckets, pending)


def scrape(address: str | None) -> Scrape | None:
    """The reporting service's /metrics, or None when there is no address or it does not answer."""
    if not address:
        return None
    url = f"http://{address}/metrics"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as reply:
        return parse(reply.read().decode())
    return None


def quantile(buckets: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding the q-quantile (a histogram cannot say more)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return 0.0
    for bound, count in ordered:
        if count >= q * total:
            return bound
    return math.inf


def between(before: Scrape | None, after: Scrape | None) -> Lag | None:
    if before is None or after is None:
        return None
    delta = {bound: count - before.buckets.get(bound, 0.0) for bound, count in after.buckets.items()}
    events = int(delta.get(math.inf, 0.0))
    return Lag(
        events=events,
        p50_ms=1000 * quantile(delta, 0.50),
        p99_ms=1000 * quantile(delta, 0.99),
        pending_after=int(after.pending),
    )
