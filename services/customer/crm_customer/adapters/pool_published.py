"""Published language of pools and follow-ups: domain values <-> crm.customer.v1 enums, event subjects."""

from __future__ import annotations

from crm.customer.v1 import follow_up_service_pb2 as fu_pb
from crm.customer.v1 import pool_events_pb2 as events_pb
from crm.customer.v1 import pool_service_pb2 as pool_pb
from crm_customer.adapters.published import timestamp
from crm_customer.domain.follow_ups import FollowUp, FollowUpType
from crm_customer.domain.pools import OwnershipReason, ReleaseReason

REASON_TO_PB = {
    OwnershipReason.CLAIMED: pool_pb.OWNERSHIP_CHANGE_REASON_CLAIMED,
    OwnershipReason.ASSIGNED: pool_pb.OWNERSHIP_CHANGE_REASON_ASSIGNED,
    OwnershipReason.RELEASED: pool_pb.OWNERSHIP_CHANGE_REASON_RELEASED,
    OwnershipReason.RECLAIMED: pool_pb.OWNERSHIP_CHANGE_REASON_RECLAIMED,
    OwnershipReason.TRANSFERRED: pool_pb.OWNERSHIP_CHANGE_REASON_TRANSFERRED,
}
RELEASE_REASON_FROM_PB = {
    pool_pb.RELEASE_REASON_NO_INTEREST: ReleaseReason.NO_INTEREST,
    pool_pb.RELEASE_REASON_NO_BUDGET: ReleaseReason.NO_BUDGET,
    pool_pb.RELEASE_REASON_UNREACHABLE: ReleaseReason.UNREACHABLE,
    pool_pb.RELEASE_REASON_DUPLICATE: ReleaseReason.DUPLICATE,
    pool_pb.RELEASE_REASON_WORKLOAD: ReleaseReason.WORKLOAD,
    pool_pb.RELEASE_REASON_OTHER: ReleaseReason.OTHER,
}
FOLLOW_UP_TYPE_TO_PB = {
    FollowUpType.CALL: fu_pb.FOLLOW_UP_TYPE_CALL,
    FollowUpType.VISIT: fu_pb.FOLLOW_UP_TYPE_VISIT,
    FollowUpType.EMAIL: fu_pb.FOLLOW_UP_TYPE_EMAIL,
    FollowUpType.MESSAGE: fu_pb.FOLLOW_UP_TYPE_MESSAGE,
    FollowUpType.MEETING: fu_pb.FOLLOW_UP_TYPE_MEETING,
    FollowUpType.NOTE: fu_pb.FOLLOW_UP_TYPE_NOTE,
}
FOLLOW_UP_TYPE_FROM_PB = {v: k for k, v in FOLLOW_UP_TYPE_TO_PB.items()}

SUBJECT_OWNERSHIP = {reason: f"crm.customer.customer.{reason.value}" for reason in OwnershipReason}
SUBJECT_CUSTOMER_LOCKED = "crm.customer.customer.locked"
SUBJECT_CUSTOMER_UNLOCKED = "crm.customer.customer.unlocked"
SUBJECT_RECLAIM_WARNING = "crm.customer.customer.reclaim_warning"
SUBJECT_FOLLOW_UP_LOGGED = "crm.customer.follow_up.logged"
SUBJECT_FOLLOW_UP_DUE = "crm.customer.follow_up.due"


def follow_up_logged(follow_up: FollowUp) -> events_pb.FollowUpLogged:
    event = events_pb.FollowUpLogged(
        follow_up=follow_up.name,
        customer=f"customers/{follow_up.customer_id}",
        type=FOLLOW_UP_TYPE_TO_PB[follow_up.type],
        author=follow_up.author,
        follow_up_time=timestamp(follow_up.follow_up_time),
    )
    if follow_up.next_follow_up_time is not None:
        event.next_follow_up_time.CopyFrom(timestamp(follow_up.next_follow_up_time))
    return event
