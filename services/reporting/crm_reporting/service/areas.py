"""The areas that project events into read models, in the order their handlers run.

Each module has `register(registry, app)`; see crm_reporting.projection_registry.
"""

from __future__ import annotations

REGISTRARS: list = []
