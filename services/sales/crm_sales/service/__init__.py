"""Use cases of the sales service."""
