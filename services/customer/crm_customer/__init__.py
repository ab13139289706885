"""Customer service: customers and contacts (the CRM core)."""
