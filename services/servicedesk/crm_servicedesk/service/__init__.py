"""Use cases of the servicedesk: one function per command or query."""
