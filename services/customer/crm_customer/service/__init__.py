"""Use cases of the customer service."""
