"""Other services' events the contract service applies (OpportunityWon -> a draft contract)."""

from __future__ import annotations

from crm_contract.app import ContractApp


def event_consumers(app: ContractApp) -> list:
    """EventConsumer workers."""
    return []
