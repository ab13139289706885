"""A closed-loop load generator: N concurrent callers for a fixed time, latency per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    scenario: str
    calls: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def run_load(
    scenario: str,
    call: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    seconds: float,
    warmup_seconds: float = 1.0,
    max_calls: int = 1_000_000,
) -> LoadResult:
    """Run `call(i)` from `concurrency` workers; only calls that start after the warm-up count.

    Bounded twice: by time and by `max_calls`, so it always stops by itself.
    """
    counter = iter(range(max_calls))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup_seconds
    stop_at = measure_from + seconds
    first_error: list[BaseException] = []

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            began = time.perf_counter()
            if began >= stop_at:
                return
            try:
                await call(i)
            except Exception as exc:
                if began >= measure_from:
                    errors += 1
                if not first_error:
                    first_error.append(exc)
                continue
            if began >= measure_from:
                latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = max(time.perf_counter(), stop_at) - measure_from
    if first_error and errors:
        print(f"  {scenario}: {errors} errors, first: {first_error[0]!r}"[:300])
    return LoadResult(scenario, len(latencies), errors, min(elapsed, seconds + 5), latencies)
