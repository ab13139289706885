"""Per-persona figures next to Locust's per-RPC ones (Locust's CSV has no persona column).

Every call is also logged here under its persona; when the test stops, the Locust process writes
them as JSON to $CRM_LOAD_PERSONA_STATS, with the wall-clock window they cover (after spawning
when --reset-stats is on), which the CLI uses to match the stack's CPU time to the requests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import events
from locust.stats import RequestStats

from crm_load import env

_stats = RequestStats(use_response_times_cache=False)
_window = {"start": time.time(), "stop": 0.0}
_settings = {"reset_on_spawn": False}


def record(persona: str, elapsed_ms: float, length: int, failure: Exception | None) -> None:
    _stats.log_request("persona", persona, round(elapsed_ms), length)
    if failure is not None:
        _stats.log_error("persona", persona, failure)


def snapshot() -> dict:
    personas = {}
    seconds = max(1e-9, (_window["stop"] or time.time()) - _window["start"])
    for (name, _method), entry in sorted(_stats.entries.items()):
        personas[name] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rps": entry.num_requests / seconds,
            "p50": entry.get_response_time_percentile(0.5),
            "p95": entry.get_response_time_percentile(0.95),
            "p99": entry.get_response_time_percentile(0.99),
            "avg": entry.avg_response_time,
        }
    return {"window": dict(_window), "seconds": seconds, "personas": personas}


@events.test_start.add_listener
def _started(environment, **_kwargs) -> None:
    _stats.reset_all()
    _window.update(start=time.time(), stop=0.0)


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_kwargs) -> None:
    # Mirrors Locust's own --reset-stats so both tables describe the same window.
    if _settings["reset_on_spawn"]:
        _stats.reset_all()
        _window["start"] = time.time()


@events.init.add_listener
def _init(environment, **_kwargs) -> None:
    _settings["reset_on_spawn"] = bool(getattr(environment, "reset_stats", False))


@events.test_stop.add_listener
def _stopped(environment, **_kwargs) -> None:
    from locust.runners import MasterRunner, WorkerRunner

    _window["stop"] = time.time()
    out = env.path(env.PERSONA_STATS)
    if out is None or isinstance(environment.runner, MasterRunner):  # the master runs no users
        return
    if isinstance(environment.runner, WorkerRunner):  # one file per worker; add them up afterwards
        out = Path(f"{out}.{environment.runner.worker_index}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(snapshot(), indent=1))
