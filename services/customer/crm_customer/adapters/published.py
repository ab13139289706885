"""The published language: domain values <-> crm.customer.v1 protobuf enums and event payloads.

Used by the API mappers and by the use cases that emit events, so both speak
exactly the same enum names.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.domain.model import Contact, Customer, CustomerKind, CustomerStatus, LifecycleStage, Tier

KIND_TO_PB = {CustomerKind.COMPANY: pb.CUSTOMER_KIND_COMPANY, CustomerKind.PERSON: pb.CUSTOMER_KIND_PERSON}
TIER_TO_PB = {Tier.A: pb.CUSTOMER_TIER_A, Tier.B: pb.CUSTOMER_TIER_B, Tier.C: pb.CUSTOMER_TIER_C}
STAGE_TO_PB = {
    LifecycleStage.PROSPECT: pb.LIFECYCLE_STAGE_PROSPECT,
    LifecycleStage.ACTIVE: pb.LIFECYCLE_STAGE_ACTIVE,
    LifecycleStage.LOYAL: pb.LIFECYCLE_STAGE_LOYAL,
    LifecycleStage.AT_RISK: pb.LIFECYCLE_STAGE_AT_RISK,
    LifecycleStage.CHURNED: pb.LIFECYCLE_STAGE_CHURNED,
}
STATUS_TO_PB = {
    CustomerStatus.OWNED: pb.CUSTOMER_STATUS_OWNED,
    CustomerStatus.IN_POOL: pb.CUSTOMER_STATUS_IN_POOL,
    CustomerStatus.MERGED: pb.CUSTOMER_STATUS_MERGED,
    CustomerStatus.ERASED: pb.CUSTOMER_STATUS_ERASED,
}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
TIER_FROM_PB = {v: k for k, v in TIER_TO_PB.items()}
STAGE_FROM_PB = {v: k for k, v in STAGE_TO_PB.items()}

# Enum names as they appear in filters ("tier = CUSTOMER_TIER_A") -> stored values.
KIND_FILTER_VALUES = {pb.CustomerKind.Name(v): k.value for k, v in KIND_TO_PB.items()}
TIER_FILTER_VALUES = {pb.CustomerTier.Name(v): k.value for k, v in TIER_TO_PB.items()}
STAGE_FILTER_VALUES = {pb.LifecycleStage.Name(v): k.value for k, v in STAGE_TO_PB.items()}
STATUS_FILTER_VALUES = {pb.CustomerStatus.Name(v): k.value for k, v in STATUS_TO_PB.items()}

SUBJECT_CUSTOMER_CREATED = "crm.customer.customer.created"
SUBJECT_CUSTOMER_UPDATED = "crm.customer.customer.updated"
SUBJECT_CUSTOMER_DELETED = "crm.customer.customer.deleted"
SUBJECT_CONTACT_CREATED = "crm.customer.contact.created"
SUBJECT_CONTACT_UPDATED = "crm.customer.contact.updated"
SUBJECT_CONTACT_DELETED = "crm.customer.contact.deleted"


def timestamp(moment) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def customer_snapshot(customer: Customer) -> events_pb.CustomerSnapshot:
    """Everything reporting may know about a customer, minus personal data.

    A person's name is personal data: it stays out of events (which live on in the stream
    after an erasure); a company's name does not.
    """
    return events_pb.CustomerSnapshot(
        name=customer.name,
        kind=KIND_TO_PB[customer.kind],
        display_name=customer.display_name if customer.kind is CustomerKind.COMPANY else "",
        industry=customer.industry,
        source=customer.source,
        tier=TIER_TO_PB.get(customer.tier, pb.CUSTOMER_TIER_UNSPECIFIED),
        lifecycle_stage=STAGE_TO_PB[customer.lifecycle_stage],
        tags=customer.tags,
        owner=customer.owner,
        team=customer.team,
        create_time=timestamp(customer.create_time),
        update_time=timestamp(customer.update_time),
    )


def contact_snapshot(contact: Contact) -> events_pb.ContactSnapshot:
    """Contacts are people: their names stay out of events (job titles are not personal)."""
    return events_pb.ContactSnapshot(
        name=contact.name,
        customer=f"customers/{contact.customer_id}",
        title=contact.title,
        is_primary=contact.is_primary,
    )
