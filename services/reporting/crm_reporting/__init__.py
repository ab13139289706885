"""The reporting service: read models built only from every service's events, and the reports on them."""
