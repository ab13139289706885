"""Renewal reminders and expiry of signed contracts (durable timers scheduled by SignContract).

A timer that fires for a contract no longer ACTIVE (terminated, or a stale timer)
does nothing: the status decides, never the timer alone.
"""

from __future__ import annotations

from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.domain import contracts as rules
from crm_contract.domain.contracts import ContractStatus
from crm_contract.service.contract_snapshots import snapshot, timestamp
from crm_contract.service.contracts import EXPIRY_TIMER, RENEWAL_DUE_TIMER
from crm_shared import timers

SUBJECT_RENEWAL_DUE = "crm.contract.contract.renewal_due"
SUBJECT_EXPIRED = "crm.contract.contract.expired"


async def announce_renewal_due(uow, contract_id: str) -> None:
    """ContractRenewalDue for an ACTIVE contract, with the whole days left until its end date."""
    contract = await ContractRepository(uow.session).get(contract_id)
    if contract is None or contract.status is not ContractStatus.ACTIVE:
        return
    uow.emit(
        SUBJECT_RENEWAL_DUE,
        events_pb2.ContractRenewalDue(
            contract=snapshot(contract), days_left=rules.days_left(contract, uow.now)
        ),
        resource=contract.name,
    )
    uow.audit("renewal_due", contract.name, [])


async def expire_contract(uow, contract_id: str) -> None:
    """ACTIVE and past its end date -> EXPIRED with ContractExpired; anything else is left alone."""
    repo = ContractRepository(uow.session)
    current = await repo.get(contract_id, lock=True)
    if current is None or current.status is not ContractStatus.ACTIVE:
        return
    expires_at = rules.expires_at(current)
    if expires_at is None or uow.now < expires_at:
        return
    expired = rules.expire(current, uow.now)
    await repo.save(expired, current.row_version)
    # A reminder still pending (notice period 0, or a late worker) has nothing left to remind of.
    await timers.cancel(uow, RENEWAL_DUE_TIMER, expired.id)
    uow.emit(
        SUBJECT_EXPIRED,
        events_pb2.ContractExpired(contract=snapshot(expired), expire_time=timestamp(uow.now)),
        resource=expired.name,
    )
    uow.audit("expired", expired.name, ["status"])


def timer_handlers(app) -> dict:
    """kind -> async handler(uow, timer) for the contract lifecycle timers."""

    async def renewal_due(uow, timer) -> None:
        await announce_renewal_due(uow, timer.key)

    async def expire(uow, timer) -> None:
        await expire_contract(uow, timer.key)

    return {RENEWAL_DUE_TIMER: renewal_due, EXPIRY_TIMER: expire}
