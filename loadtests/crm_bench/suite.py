"""What a benchmark suite gets, and the list of suites `make bench` runs.

A suite is a module in this package with KEY, TITLE and `async def measure(env) -> str`
returning the markdown body of its section in docs/benchmarks.md (figures and ratios
measured side by side in the same run; never pass/fail timing assertions).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run in this order by `make bench` (BENCH_SUITES=foundation,... picks some).
SUITES = [
    "foundation",
    "list_scale",
    "behavior",
    "import",
    "sales_convert",
    "opportunities",
    "payments",
    "tickets",
    "knowledge",
    "funnel",
    "reporting_lag",
]


@dataclass
class BenchEnv:
    gateway: str  # Envoy, "127.0.0.1:port"
    direct: dict[str, str]  # service name -> its own gRPC address
    token: str  # an admin token valid for the run
    seconds: float  # per measured scenario
    concurrency: int  # calls in flight
    stack: Any  # crm_gateway.devstack.Stack (data dir, keys, catalog, database files)
    data_dir: Path

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def database_url(self, service: str) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'data' / (service + '.db')}"


def machine_line(extra: str = "") -> str:
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. {extra}"
    ).strip()
