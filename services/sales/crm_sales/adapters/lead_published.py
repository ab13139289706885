"""The published language of leads: domain values <-> crm.sales.v1 enums and event payloads."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import common_pb2, events_pb2, lead_service_pb2
from crm_sales.domain.leads import Lead, LeadStatus, SourceChannel

CHANNEL_TO_PB = {
    SourceChannel.WEB_FORM: common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM,
    SourceChannel.ADS: common_pb2.LEAD_SOURCE_CHANNEL_ADS,
    SourceChannel.REFERRAL: common_pb2.LEAD_SOURCE_CHANNEL_REFERRAL,
    SourceChannel.TRADE_SHOW: common_pb2.LEAD_SOURCE_CHANNEL_TRADE_SHOW,
    SourceChannel.SOCIAL: common_pb2.LEAD_SOURCE_CHANNEL_SOCIAL,
    SourceChannel.THIRD_PARTY: common_pb2.LEAD_SOURCE_CHANNEL_THIRD_PARTY,
    SourceChannel.IMPORT: common_pb2.LEAD_SOURCE_CHANNEL_IMPORT,
    SourceChannel.OTHER: common_pb2.LEAD_SOURCE_CHANNEL_OTHER,
}
CHANNEL_FROM_PB = {v: k for k, v in CHANNEL_TO_PB.items()}
STATUS_TO_PB = {
    LeadStatus.NEW: lead_service_pb2.LEAD_STATUS_NEW,
    LeadStatus.ASSIGNED: lead_service_pb2.LEAD_STATUS_ASSIGNED,
    LeadStatus.WORKING: lead_service_pb2.LEAD_STATUS_WORKING,
    LeadStatus.CONVERTED: lead_service_pb2.LEAD_STATUS_CONVERTED,
    LeadStatus.RECYCLED: lead_service_pb2.LEAD_STATUS_RECYCLED,
    LeadStatus.DISQUALIFIED: lead_service_pb2.LEAD_STATUS_DISQUALIFIED,
}
# Enum names as they appear in filters -> stored values.
CHANNEL_FILTER_VALUES = {common_pb2.LeadSourceChannel.Name(v): k.value for k, v in CHANNEL_TO_PB.items()}
STATUS_FILTER_VALUES = {lead_service_pb2.LeadStatus.Name(v): k.value for k, v in STATUS_TO_PB.items()}

SUBJECT_LEAD_CREATED = "crm.sales.lead.created"
SUBJECT_LEAD_ASSIGNED = "crm.sales.lead.assigned"
SUBJECT_LEAD_CONVERTED = "crm.sales.lead.converted"
SUBJECT_LEAD_DISQUALIFIED = "crm.sales.lead.disqualified"


def timestamp(moment) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def lead_snapshot(lead: Lead) -> events_pb2.LeadSnapshot:
    """What other services may know about a lead: no names, phones or emails."""
    return events_pb2.LeadSnapshot(
        name=lead.name,
        source_channel=CHANNEL_TO_PB.get(lead.source_channel, common_pb2.LEAD_SOURCE_CHANNEL_UNSPECIFIED),
        source_platform=lead.source_platform,
        campaign=lead.campaign,
        owner=lead.owner,
        team=lead.team,
        score=lead.score,
        create_time=timestamp(lead.create_time),
    )
