"""The persona mix and the vocabulary the seed and the personas share.

Kept free of Locust imports: importing locust monkey-patches the process for gevent, which the
CLI and the asyncio seeder must not be.
"""

from __future__ import annotations

# Locust weights: ten reps for six agents, a sales and a support manager, one integration.
WEIGHTS = {"SalesRep": 10, "SupportAgent": 6, "SalesManager": 1, "SupportManager": 1, "Integration": 1}

INDUSTRIES = ("manufacturing", "retail", "logistics", "healthcare", "software", "energy")
SEARCH_TAGS = ("key-account", "expansion", "renewal", "smb")
