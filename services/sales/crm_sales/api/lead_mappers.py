"""Protobuf <-> domain for leads, with per-role field masking of phones and emails on the way out."""

from __future__ import annotations

from datetime import UTC as _UTC

from crm.sales.v1 import common_pb2
from crm.sales.v1 import lead_service_pb2 as pb
from crm_sales.adapters.lead_published import CHANNEL_FROM_PB, CHANNEL_TO_PB, STATUS_TO_PB, timestamp
from crm_sales.domain.leads import AssignmentRule, Evidence, Lead, LeadInput, RuleInput
from crm_shared.access import AccessPolicy, FieldRule
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument
from crm_shared.pii.normalize import mask_email, mask_phone
from crm_shared.principal import Principal


def _id_from(name: str, collection: str, field: str) -> str:
    prefix, _, resource_id = name.partition("/")
    if prefix != collection or not resource_id or "/" in resource_id:
        raise InvalidArgument.for_field(field, f"must look like {collection}/{{id}}")
    return resource_id


def lead_id_from(name: str, *, field: str = "name") -> str:
    return _id_from(name, "leads", field)


def rule_id_from(name: str, *, field: str = "name") -> str:
    return _id_from(name, "leadAssignmentRules", field)


def campaign_id_from(name: str, *, field: str) -> str:
    return _id_from(name, "campaigns", field) if name else ""


def lead_input(message: pb.Lead, *, field: str = "lead") -> LeadInput:
    return LeadInput(
        display_name=message.display_name,
        company=message.company,
        title=message.title,
        phone_numbers=list(message.phone_numbers),
        email_addresses=list(message.email_addresses),
        source_channel=CHANNEL_FROM_PB.get(message.source_channel),
        source_platform=message.source_platform,
        external_account_id=message.external_account_id,
        campaign_id=campaign_id_from(message.campaign, field=f"{field}.campaign"),
        evidence=[Evidence(e.uri, e.description) for e in message.evidence],
        owner=message.owner,
        team=message.team,
        score=message.score,
        next_follow_up_time=message.next_follow_up_time.ToDatetime(tzinfo=_UTC)
        if message.HasField("next_follow_up_time")
        else None,
    )


def capture_input(message: pb.CaptureLeadRequest) -> LeadInput:
    channel = CHANNEL_FROM_PB.get(message.source_channel)
    evidence = [Evidence("", message.message)] if message.message.strip() else []
    return LeadInput(
        display_name=message.display_name,
        company=message.company,
        phone_numbers=[message.phone_number] if message.phone_number.strip() else [],
        email_addresses=[message.email_address] if message.email_address.strip() else [],
        source_channel=channel or CHANNEL_FROM_PB[common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM],
        source_platform=message.source_platform,
        external_account_id=message.external_account_id,
        campaign_id=campaign_id_from(message.campaign, field="campaign"),
        evidence=evidence,
    )


def rule_input(message: pb.LeadAssignmentRule) -> RuleInput:
    return RuleInput(
        display_name=message.display_name,
        team=message.team,
        members=list(message.members),
        source_channels=[CHANNEL_FROM_PB[c] for c in message.source_channels if c in CHANNEL_FROM_PB],
    )


class LeadMasker:
    """Applies the policy's field rules for leads (read / masked / hidden) for one caller."""

    def __init__(self, policy: AccessPolicy, principal: Principal) -> None:
        self._phones = policy.field_rule(principal, "leads", "phone_numbers")
        self._emails = policy.field_rule(principal, "leads", "email_addresses")

    @staticmethod
    def _apply(rule: FieldRule, values: list[str], mask) -> list[str]:
        if rule is FieldRule.HIDDEN:
            return []
        return [mask(v) for v in values] if rule is FieldRule.MASKED else list(values)

    def phones(self, values: list[str]) -> list[str]:
        return self._apply(self._phones, values, mask_phone)

    def emails(self, values: list[str]) -> list[str]:
        return self._apply(self._emails, values, mask_email)


def lead_to_pb(lead: Lead, masker: LeadMasker) -> pb.Lead:
    message = pb.Lead(
        name=lead.name,
        display_name=lead.display_name,
        company=lead.company,
        title=lead.title,
        phone_numbers=masker.phones(lead.phones),
        email_addresses=masker.emails(lead.emails),
        source_channel=CHANNEL_TO_PB.get(lead.source_channel, common_pb2.LEAD_SOURCE_CHANNEL_UNSPECIFIED),
        source_platform=lead.source_platform,
        external_account_id=lead.external_account_id,
        campaign=lead.campaign,
        evidence=[pb.LeadEvidence(uri=e.uri, description=e.description) for e in lead.evidence],
        status=STATUS_TO_PB[lead.status],
        disqualify_reason=lead.disqualify_reason,
        owner=lead.owner,
        team=lead.team,
        score=lead.score,
        converted_customer=lead.converted_customer,
        converted_contact=lead.converted_contact,
        converted_opportunity=lead.converted_opportunity,
        create_time=timestamp(lead.create_time),
        update_time=timestamp(lead.update_time),
        etag=etag_for(lead.id, lead.version),
    )
    if lead.next_follow_up_time is not None:
        message.next_follow_up_time.CopyFrom(timestamp(lead.next_follow_up_time))
    if lead.convert_time is not None:
        message.convert_time.CopyFrom(timestamp(lead.convert_time))
    return message


def rule_to_pb(rule: AssignmentRule) -> pb.LeadAssignmentRule:
    return pb.LeadAssignmentRule(
        name=rule.name,
        display_name=rule.display_name,
        team=rule.team,
        members=rule.members,
        source_channels=[CHANNEL_TO_PB[c] for c in rule.source_channels],
        next_member=rule.next_member,
        create_time=timestamp(rule.create_time),
        update_time=timestamp(rule.update_time),
        etag=etag_for(rule.id, rule.version),
    )
