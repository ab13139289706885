"""Environment variables the CLI hands to the Locust processes (and that distributed workers set).

The Locust processes read everything they need from here and from the seed file, so a worker on
another machine needs only the seed file, the signing key and these variables.
"""

from __future__ import annotations

import os
from pathlib import Path

SEED_FILE = "CRM_LOAD_SEED_FILE"  # JSON written by `python -m crm_load seed` (required)
TARGET = "CRM_LOAD_TARGET"  # gateway host:port; default: the one recorded in the seed file
DIRECT = "CRM_LOAD_DIRECT"  # "1": call each service on its own address (from the seed file)
KEYS_DIR = "CRM_LOAD_KEYS_DIR"  # directory with private.pem signing the personas' tokens
CHANNEL = "CRM_LOAD_CHANNEL"  # "process" (one channel per target per process) or "user"
PERSONA_STATS = "CRM_LOAD_PERSONA_STATS"  # where a Locust process writes per-persona figures
WORKERS = "CRM_LOAD_WORKERS"  # number of Locust workers, so each picks distinct identities
DEADLINE = "CRM_LOAD_DEADLINE_SECONDS"  # per call (default 5)
TOUR = "CRM_LOAD_TOUR"  # "1": every user runs each of its tasks once on start (smoke test)


def flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
