"""Connection-pool gauges of each service's database, read at scrape time.

A custom Collector asks SQLAlchemy's pool for its counts when Prometheus scrapes, so the
request path pays nothing (no checkout/checkin event hooks). Exported, labelled {service}:

  crm_db_pool_size             persistent connections the pool keeps (pool_size)
  crm_db_pool_max_connections  pool_size + max_overflow: checkouts beyond it wait (pool_timeout)
  crm_db_pool_open             connections open now (idle + checked out)
  crm_db_pool_checked_out      connections lent to a transaction right now
  crm_db_pool_overflow         connections open beyond pool_size right now

Saturation is checked_out / max_connections; near 1 means requests queue for a connection.
Nothing is registered at import: the collector joins a registry on the first `track_pool`.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

_GAUGES = {
    "size": "Persistent connections the pool keeps (pool_size)",
    "max_connections": "Most connections the pool opens (pool_size + max_overflow); more checkouts wait",
    "open": "Database connections open now, idle or checked out",
    "checked_out": "Database connections lent to a transaction right now",
    "overflow": "Database connections open beyond pool_size right now",
}


def _pool_counts(pool: QueuePool) -> dict[str, float]:
    size = pool.size()
    # QueuePool's overflow counter starts at -pool_size: size + overflow() = connections open.
    opened = max(0, size + pool.overflow())
    max_overflow = pool._max_overflow  # no public accessor; -1 means "unbounded"
    return {
        "size": size,
        "max_connections": float("inf") if max_overflow < 0 else size + max_overflow,
        "open": opened,
        "checked_out": pool.checkedout(),
        "overflow": max(0, opened - size),
    }


class DatabasePoolCollector(Collector):
    """One per registry; knows the engine of each service in this process (the latest one wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Weak: a disposed and dropped engine (tests build many) must not be kept alive or reported.
        self._engines: dict[str, weakref.ref[Engine]] = {}

    def track(self, service: str, engine: AsyncEngine | Engine) -> None:
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        with self._lock:
            self._engines[service or "unknown"] = weakref.ref(sync_engine)

    def _pools(self) -> Iterator[tuple[str, QueuePool]]:
        with self._lock:
            engines = list(self._engines.items())
        for service, ref in engines:
            engine = ref()
            # engine.pool is read each time: dispose() swaps in a fresh pool.
            if engine is not None and isinstance(engine.pool, QueuePool):
                yield service, engine.pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            key: GaugeMetricFamily(f"crm_db_pool_{key}", help_text, labels=["service"])
            for key, help_text in _GAUGES.items()
        }
        for service, pool in self._pools():
            for key, value in _pool_counts(pool).items():
                families[key].add_metric([service], value)
        yield from families.values()


@functools.cache
def pool_collector(registry: CollectorRegistry = REGISTRY) -> DatabasePoolCollector:
    collector = DatabasePoolCollector()
    registry.register(collector)
    return collector


def track_pool(service: str, engine: AsyncEngine | Engine, *, registry: CollectorRegistry = REGISTRY) -> None:
    """Report `engine`'s pool as {service} from now on (replacing an earlier engine of that service)."""
    pool_collector(registry).track(service, engine)
