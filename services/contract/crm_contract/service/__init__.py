"""Use cases of the contract service: one function per command or query."""
