"""The servicedesk: tickets, SLA on business calendars, escalation, assignment, knowledge base, CSAT."""
