"""Locust entry point for the CRM: `locust -f loadtests/locustfile.py` (or `python -m crm_load run`).

grpc is switched to gevent before anything creates a channel: Locust users are greenlets, and a
plain grpc call would block the whole process (every user) until it returns. Environment: see
crm_load.env (CRM_LOAD_SEED_FILE is required); personas: crm_load.personas; docs/loadtest.md.
"""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from crm_load import persona_stats  # noqa: E402, F401 - per-persona figures (listeners)
from crm_load.personas import (  # noqa: E402, F401 - Locust picks up the user classes here
    Integration,
    SalesManager,
    SalesRep,
    SupportAgent,
    SupportManager,
)
