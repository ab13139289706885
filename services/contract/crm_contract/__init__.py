"""The contract service: contracts, approvals, renewals, payment plans, payments, invoices, receivables."""
