"""Projections (event handlers) and report queries: one module per area."""
