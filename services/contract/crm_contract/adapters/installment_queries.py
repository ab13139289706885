"""What other areas of the contract service ask of (or tell) the payment plan tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.payment_tables import installments, invoices


async def plan_total(session: AsyncSession, contract_id: str) -> int | None:
    """Sum of the plan's installment amounts (minor units); None when the contract has no plan.

    UpdateContract uses it to refuse an amount that would no longer match the plan.
    """
    row = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(installments.c.amount), 0)).where(
                installments.c.contract_id == contract_id
            )
        )
    ).one()
    count, total = row
    return int(total) if count else None


async def copy_contract_scope(
    session: AsyncSession, contract_id: str, *, customer: str, owner: str, team: str
) -> None:
    """Keeps the customer/owner/team copied onto installments and invoices in step with the contract.

    Data scope on those rows is a predicate on the copies; UpdateContract calls this when it
    changes the contract's customer, owner or team. (Payments keep who owned the contract when
    the money arrived.)
    """
    values = {"customer": customer, "owner": owner, "team": team}
    await session.execute(
        sa.update(installments).where(installments.c.contract_id == contract_id).values(values)
    )
    await session.execute(sa.update(invoices).where(invoices.c.contract_id == contract_id).values(values))
