"""Reading what a Locust run wrote: per-RPC rows from <prefix>_stats.csv, failures from
<prefix>_failures.csv, per-persona rows from the JSON the locustfile writes."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from crm_load.projection_lag import Lag


@dataclass
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    avg: float = 0.0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass
class Failure:
    name: str
    error: str
    occurrences: int


@dataclass
class RunResult:
    rpcs: list[Row]
    total: Row
    personas: list[Row] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # wall clock the figures cover
    stack_cpu_seconds: float = 0.0
    locust_cpu_seconds: float = 0.0
    cpu_by_process: dict[str, float] = field(default_factory=dict)  # label -> CPU s in the window
    projection_lag: Lag | None = None  # events the reporting service applied during the run

    @property
    def error_ratio(self) -> float:
        return self.total.error_ratio

    @property
    def stack_cpu_ms_per_request(self) -> float:
        return 1000 * self.stack_cpu_seconds / self.total.requests if self.total.requests else 0.0

    @property
    def locust_cpu_ms_per_request(self) -> float:
        return 1000 * self.locust_cpu_seconds / self.total.requests if self.total.requests else 0.0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" when nothing was measured
        return 0.0


def read_stats(prefix: Path) -> tuple[list[Row], Row]:
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: Locust did not finish (see its output above)")
    rows, total = [], None
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            row = Row(
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                rps=_number(record["Requests/s"]),
                p50=_number(record["50%"]),
                p95=_number(record["95%"]),
                p99=_number(record["99%"]),
                avg=_number(record["Average Response Time"]),
            )
            if record["Name"] == "Aggregated":
                total = row
            else:
                rows.append(row)
    if total is None:
        raise ValueError(f"{path} has no Aggregated row")
    return sorted(rows, key=lambda r: -r.requests), total


def _error_text(text: str) -> str:
    """Locust stores repr(exception): "CallFailed('NOT_FOUND TICKET_NOT_FOUND')" -> the message."""
    match = re.fullmatch(r"\w+\((['\"])(.*)\1\)", text)
    return match.group(2) if match else text


def read_failures(prefix: Path) -> list[Failure]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            Failure(record["Name"], _error_text(record["Error"]), int(record["Occurrences"]))
            for record in csv.DictReader(handle)
        ]


def read_personas(path: Path) -> tuple[list[Row], tuple[float, float]]:
    """Per persona; with distributed workers, <path>.<n> files are summed (percentiles: the worst)."""
    files = [path] if path.exists() else sorted(path.parent.glob(path.name + ".*"))
    merged: dict[str, Row] = {}
    window = (0.0, 0.0)
    for file in files:
        data = json.loads(file.read_text())
        start, stop = data["window"]["start"], data["window"]["stop"]
        window = (min(window[0] or start, start), max(window[1], stop))
        for name, figures in data["personas"].items():
            row = Row(name=name, **figures)
            if name in merged:
                old = merged[name]
                row = Row(
                    name,
                    old.requests + row.requests,
                    old.failures + row.failures,
                    old.rps + row.rps,
                    max(old.p50, row.p50),
                    max(old.p95, row.p95),
                    max(old.p99, row.p99),
                    (old.avg * old.requests + row.avg * row.requests) / max(1, old.requests + row.requests),
                )
            merged[name] = row
    return sorted(merged.values(), key=lambda r: -r.requests), window
