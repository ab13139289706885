"""A won opportunity (crm.sales.opportunity.won) becomes exactly one DRAFT contract.

The draft belongs to the opportunity's owner and team, names its customer and the opportunity,
and takes its title and amount; the rep completes dates, signers and line items before submitting.

Exactly once per opportunity, on two levels:
- the same event delivered again: the consumer's inbox row makes it a no-op (crm_shared.events);
- a different event for the same opportunity (won -> reopened -> won again, or a replay with a
  new id): the contract's `won_opportunity` column is UNIQUE. The handler looks it up first and
  does nothing when a contract exists; if a concurrent consumer inserted it in between, the
  unique violation is raised as transient, so the retry finds that contract and does nothing.

A payload that can never become a contract raises InvalidOpportunityEvent, and the consumer
dead-letters it at once instead of retrying: an opportunity or customer that is not a resource
name, no owner, or what the contract rules refuse (a negative amount, no currency; their
violations are named in the dead letter's error). A zero amount is a legitimate draft: the rep
fills it in before submitting, which needs a positive amount.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from crm.sales.v1 import events_pb2 as sales_events_pb
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.service import contracts
from crm_shared.errors import InvalidArgument
from crm_shared.events.errors import TransientError

log = logging.getLogger(__name__)

ORIGIN_OPPORTUNITY_WON = "opportunity_won"
TITLE_MAX_LENGTH = 200  # Contract.title's limit in the API
_UUID = "[0-9a-f-]{36}"
_OPPORTUNITY_NAME = re.compile(rf"^opportunities/{_UUID}$")
_CUSTOMER_NAME = re.compile(rf"^customers/{_UUID}$")


class InvalidOpportunityEvent(ValueError):
    """A payload that can never be applied (not transient): the consumer dead-letters it."""


@dataclass(frozen=True)
class WonDeal:
    """What a draft contract takes from a won opportunity."""

    opportunity: str
    customer: str
    title: str
    currency: str
    amount_minor: int
    owner: str
    team: str


def won_deal(payload: sales_events_pb.OpportunityWon) -> WonDeal:
    """The validated draft input of an OpportunityWon payload, or InvalidOpportunityEvent."""
    snapshot = payload.opportunity
    problems = []
    if not _OPPORTUNITY_NAME.match(snapshot.name):
        problems.append(f"opportunity name {snapshot.name!r} is not opportunities/{{uuid}}")
    if not _CUSTOMER_NAME.match(snapshot.customer):
        problems.append(f"customer {snapshot.customer!r} is not customers/{{uuid}}")
    if not snapshot.owner:
        problems.append("the opportunity has no owner")
    if problems:
        raise InvalidOpportunityEvent("; ".join(problems))
    return WonDeal(
        opportunity=snapshot.name,
        customer=snapshot.customer,
        title=snapshot.title[:TITLE_MAX_LENGTH],
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        owner=snapshot.owner,
        team=snapshot.team,
    )


async def opportunity_won(uow, payload: sales_events_pb.OpportunityWon) -> None:
    """Create the opportunity's draft contract unless it already has one."""
    deal = won_deal(payload)
    existing = await ContractRepository(uow.session).by_won_opportunity(deal.opportunity)
    if existing is not None:
        log.info("%s already has its contract; OpportunityWon ignored", deal.opportunity)
        return
    try:
        await contracts.create_draft(
            uow,
            customer=deal.customer,
            opportunity=deal.opportunity,
            title=deal.title,
            currency=deal.currency,
            amount=deal.amount_minor,
            owner=deal.owner,
            team=deal.team,
            origin=ORIGIN_OPPORTUNITY_WON,
            won_opportunity=deal.opportunity,
        )
    except InvalidArgument as exc:
        refused = "; ".join(f"{v.field} {v.description}" for v in exc.field_violations) or exc.message
        raise InvalidOpportunityEvent(f"{deal.opportunity}: {refused}") from exc
    except IntegrityError as exc:
        # Another consumer (or replica) created it since the lookup: retry, and the lookup finds it.
        raise TransientError(f"{deal.opportunity}: contract created concurrently") from exc
