"""pytest plugin (loaded with -p crm_shared.testing.plugin): fixtures for real components."""

from crm_shared.testing.fixtures_auth import *  # noqa: F403
from crm_shared.testing.fixtures_db import *  # noqa: F403
from crm_shared.testing.fixtures_nats import *  # noqa: F403
