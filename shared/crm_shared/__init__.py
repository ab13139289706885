"""crm_shared: the library every CRM service is built on (one copy, never per service)."""
