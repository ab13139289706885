"""CPU seconds of the stack's processes and of Locust, sampled once a second.

CPU per request = the stack's CPU seconds over the measured window / requests in it. Locust's own
CPU is reported next to it: on one machine the load generator takes cores from the stack.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable

import psutil


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def label(process: psutil.Process) -> str:
    """customer, sales, ..., envoy, nats, devstack: which part of the stack a process is."""
    with contextlib.suppress(psutil.Error):
        argv = process.cmdline()
        for i, arg in enumerate(argv[:-1]):
            if arg == "-m":
                return argv[i + 1].removeprefix("crm_").removeprefix("gateway.")
        return process.name().removesuffix("-server")
    return "?"


def tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


class CpuSampler:
    """Samples (wall time, stack CPU s, load generator CPU s) in a thread until stopped."""

    def __init__(
        self, stack: Callable[[], list[psutil.Process]], generator: Callable[[], list[psutil.Process]]
    ):
        self._stack, self._generator = stack, generator
        self.samples: list[tuple[float, float, float]] = []
        self.per_process: list[tuple[float, dict[str, float]]] = []  # (wall time, label -> CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._stack_processes = self._stack()
        self._labels = {p.pid: label(p) for p in self._stack_processes}
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        generator: list[psutil.Process] = []
        while True:
            if not generator or len(generator) < 2:
                generator = self._generator()  # Locust starts after the sampler; pick it up
            now = time.time()
            self.samples.append((now, _cpu_seconds(self._stack_processes), _cpu_seconds(generator)))
            parts: dict[str, float] = {}
            for process in self._stack_processes:
                name = self._labels[process.pid]
                parts[name] = parts.get(name, 0.0) + _cpu_seconds([process])
            self.per_process.append((now, parts))
            if self._stop.wait(1.0):
                return

    def between(self, start: float, stop: float) -> tuple[float, float]:
        """(stack, generator) CPU seconds in [start, stop], interpolated between samples."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        first, last = self._at(start), self._at(stop)
        return max(0.0, last[0] - first[0]), max(0.0, last[1] - first[1])

    def _at(self, moment: float) -> tuple[float, float]:
        times = [s[0] for s in self.samples]
        i = min(max(1, bisect.bisect_left(times, moment)), len(times) - 1)
        (t0, a0, b0), (t1, a1, b1) = self.samples[i - 1], self.samples[i]
        share = 0.0 if t1 == t0 else min(1.0, max(0.0, (moment - t0) / (t1 - t0)))
        return a0 + (a1 - a0) * share, b0 + (b1 - b0) * share

    def breakdown(self, start: float, stop: float) -> dict[str, float]:
        """CPU seconds per part of the stack between the samples nearest to start and stop."""
        inside = [parts for moment, parts in self.per_process if start <= moment <= stop]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        return {name: last[name] - first.get(name, 0.0) for name in sorted(last, key=lambda n: -last[n])}
