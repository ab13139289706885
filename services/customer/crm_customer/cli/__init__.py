"""Command-line tools of the customer service: CSV import and export over gRPC.

    python -m crm_customer.cli import --file customers.csv --mapping mapping.yaml --target 127.0.0.1:8080
    python -m crm_customer.cli export --out customers.csv --filter 'tier = CUSTOMER_TIER_A'

The token comes from --token or $CRM_TOKEN.
"""
