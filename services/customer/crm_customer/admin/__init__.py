"""Operator commands that run against the customer database directly (`python -m crm_customer.admin`)."""
