"""Protobuf <-> domain, including per-role field masking on the way out."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2

from crm.customer.v1 import customer_pb2 as pb
from crm_customer.adapters.published import (
    KIND_FROM_PB,
    KIND_TO_PB,
    STAGE_FROM_PB,
    STAGE_TO_PB,
    STATUS_TO_PB,
    TIER_FROM_PB,
    TIER_TO_PB,
    timestamp,
)
from crm_customer.domain.model import Address, Contact, Customer
from crm_customer.domain.rules import ContactInput, CustomerInput, RawContactPoint
from crm_shared.access import AccessPolicy, FieldRule
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument
from crm_shared.pii.normalize import mask_email, mask_phone
from crm_shared.principal import Principal


def customer_id_from(name: str, *, field: str = "name") -> str:
    prefix, _, customer_id = name.partition("/")
    if prefix != "customers" or not customer_id or "/" in customer_id:
        raise InvalidArgument.for_field(field, "must look like customers/{customer}")
    return customer_id


def contact_ids_from(name: str, *, field: str = "name") -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "customers" or parts[2] != "contacts" or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(field, "must look like customers/{customer}/contacts/{contact}")
    return parts[1], parts[3]


def _points(items) -> list[RawContactPoint]:
    return [RawContactPoint(p.number if hasattr(p, "number") else p.address, p.label) for p in items]


def customer_input(message: pb.Customer) -> CustomerInput:
    address = None
    if message.HasField("address"):
        a = message.address
        address = Address(a.region_code, a.administrative_area, a.locality, a.address_line, a.postal_code)
    return CustomerInput(
        kind=KIND_FROM_PB.get(message.kind),
        display_name=message.display_name,
        industry=message.industry,
        source=message.source,
        tier=TIER_FROM_PB.get(message.tier),
        lifecycle_stage=STAGE_FROM_PB.get(message.lifecycle_stage),
        tags=list(message.tags),
        owner=message.owner,
        team=message.team,
        phone_numbers=_points(message.phone_numbers),
        email_addresses=_points(message.email_addresses),
        address=address,
        website=message.website,
        tax_id=message.tax_id,
        custom_fields=json_format.MessageToDict(message.custom_fields)
        if message.HasField("custom_fields")
        else {},
        collaborators=list(message.collaborators),
    )


def contact_input(message: pb.Contact) -> ContactInput:
    return ContactInput(
        display_name=message.display_name,
        title=message.title,
        phone_numbers=_points(message.phone_numbers),
        email_addresses=_points(message.email_addresses),
        is_primary=message.is_primary,
        notes=message.notes,
    )


class OutputMasker:
    """Applies the policy's field rules (read / masked / hidden) for one caller."""

    def __init__(self, policy: AccessPolicy, principal: Principal, resource: str) -> None:
        self._rules = {
            name: policy.field_rule(principal, resource, name)
            for name in ("phone_numbers", "email_addresses", "tax_id", "address", "custom_fields", "notes")
        }

    def rule(self, field_name: str) -> FieldRule:
        return self._rules.get(field_name, FieldRule.READ)

    def phones(self, points) -> list[pb.PhoneNumber]:
        rule = self.rule("phone_numbers")
        if rule is FieldRule.HIDDEN:
            return []
        show = mask_phone if rule is FieldRule.MASKED else (lambda v: v)
        return [pb.PhoneNumber(number=show(p.value), label=p.label) for p in points]

    def emails(self, points) -> list[pb.EmailAddress]:
        rule = self.rule("email_addresses")
        if rule is FieldRule.HIDDEN:
            return []
        show = mask_email if rule is FieldRule.MASKED else (lambda v: v)
        return [pb.EmailAddress(address=show(p.value), label=p.label) for p in points]

    def visible(self, field_name: str) -> bool:
        return self.rule(field_name) is FieldRule.READ


def customer_to_pb(customer: Customer, masker: OutputMasker) -> pb.Customer:
    message = pb.Customer(
        name=customer.name,
        kind=KIND_TO_PB[customer.kind],
        display_name=customer.display_name,
        industry=customer.industry,
        source=customer.source,
        tier=TIER_TO_PB.get(customer.tier, pb.CUSTOMER_TIER_UNSPECIFIED),
        lifecycle_stage=STAGE_TO_PB[customer.lifecycle_stage],
        tags=customer.tags,
        owner=customer.owner,
        team=customer.team,
        phone_numbers=masker.phones(customer.phones),
        email_addresses=masker.emails(customer.emails),
        website=customer.website,
        tax_id=customer.tax_id if masker.visible("tax_id") else "",
        create_time=timestamp(customer.create_time),
        update_time=timestamp(customer.update_time),
        etag=etag_for(customer.id, customer.version),
        status=STATUS_TO_PB[customer.status],
        locked=customer.locked,
        pool=f"pools/{customer.pool_id}" if customer.pool_id else "",
        former_owner=customer.former_owner,
        health_score=customer.health_score,
        collaborators=customer.collaborators,
        merged_into=f"customers/{customer.merged_into}" if customer.merged_into else "",
    )
    for field_name in (
        "assign_time",
        "reclaim_time",
        "last_follow_up_time",
        "next_follow_up_time",
        "last_deal_time",
    ):
        moment = getattr(customer, field_name)
        if moment is not None:
            getattr(message, field_name).CopyFrom(timestamp(moment))
    if customer.address and masker.visible("address"):
        a = customer.address
        message.address.CopyFrom(
            pb.PostalAddress(
                region_code=a.region_code,
                administrative_area=a.administrative_area,
                locality=a.locality,
                address_line=a.address_line,
                postal_code=a.postal_code,
            )
        )
    if customer.custom_fields and masker.visible("custom_fields"):
        struct = struct_pb2.Struct()
        struct.update(customer.custom_fields)
        message.custom_fields.CopyFrom(struct)
    return message


def contact_to_pb(contact: Contact, masker: OutputMasker) -> pb.Contact:
    return pb.Contact(
        name=contact.name,
        display_name=contact.display_name,
        title=contact.title,
        phone_numbers=masker.phones(contact.phones),
        email_addresses=masker.emails(contact.emails),
        is_primary=contact.is_primary,
        notes=contact.notes if masker.visible("notes") else "",
        create_time=timestamp(contact.create_time),
        update_time=timestamp(contact.update_time),
        etag=etag_for(contact.id, contact.version),
    )
