"""Protobuf <-> domain for pools, ownership changes and follow-ups."""

from __future__ import annotations

from datetime import UTC

from crm.customer.v1 import customer_pb2
from crm.customer.v1 import follow_up_service_pb2 as fu_pb
from crm.customer.v1 import pool_service_pb2 as pb
from crm_customer.adapters.pool_published import FOLLOW_UP_TYPE_FROM_PB, FOLLOW_UP_TYPE_TO_PB, REASON_TO_PB
from crm_customer.adapters.pool_repository import OwnershipChangeRecord
from crm_customer.adapters.published import TIER_FROM_PB, TIER_TO_PB, timestamp
from crm_customer.api.mappers import OutputMasker
from crm_customer.domain.follow_ups import FollowUp, FollowUpInput
from crm_customer.domain.pools import Pool, PoolInput, PoolRules, ReclaimRule
from crm_shared.access import FieldRule
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument


def pool_id_from(name: str, *, field: str = "name") -> str:
    prefix, _, pool_id = name.partition("/")
    if prefix != "pools" or not pool_id or "/" in pool_id:
        raise InvalidArgument.for_field(field, "must look like pools/{pool}")
    return pool_id


def follow_up_ids_from(name: str, *, field: str = "name") -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "customers" or parts[2] != "followUps" or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(field, "must look like customers/{customer}/followUps/{follow_up}")
    return parts[1], parts[3]


def rules_from_pb(message: pb.PoolRules, *, field: str = "pool.rules") -> PoolRules:
    reclaim: dict = {}
    for index, rule in enumerate(message.reclaim_rules):
        tier = TIER_FROM_PB.get(rule.tier)  # None = the default rule
        if tier in reclaim:
            raise InvalidArgument.for_field(
                f"{field}.reclaim_rules[{index}].tier", "only one rule per tier (and one default)"
            )
        reclaim[tier] = ReclaimRule(rule.follow_up_days, rule.deal_days)
    return PoolRules(
        reclaim=reclaim,
        exempt_with_deal=message.exempt_with_deal,
        warn_days_before=message.warn_days_before,
        max_customers_per_user=message.max_customers_per_user,
        max_claims_per_day=message.max_claims_per_day,
        reclaim_cooldown_days=message.reclaim_cooldown_days,
    )


def rules_to_pb(rules: PoolRules) -> pb.PoolRules:
    ordered = sorted(rules.reclaim.items(), key=lambda item: "" if item[0] is None else item[0].value)
    return pb.PoolRules(
        reclaim_rules=[
            pb.ReclaimRule(
                tier=TIER_TO_PB.get(tier, customer_pb2.CUSTOMER_TIER_UNSPECIFIED),
                follow_up_days=rule.follow_up_days,
                deal_days=rule.deal_days,
            )
            for tier, rule in ordered
        ],
        exempt_with_deal=rules.exempt_with_deal,
        warn_days_before=rules.warn_days_before,
        max_customers_per_user=rules.max_customers_per_user,
        max_claims_per_day=rules.max_claims_per_day,
        reclaim_cooldown_days=rules.reclaim_cooldown_days,
    )


def pool_input(message: pb.Pool) -> PoolInput:
    return PoolInput(
        display_name=message.display_name,
        team=message.team,
        member_users=list(message.member_users),
        member_teams=list(message.member_teams),
        rules=rules_from_pb(message.rules),
    )


def pool_to_pb(pool: Pool) -> pb.Pool:
    return pb.Pool(
        name=pool.name,
        display_name=pool.display_name,
        team=pool.team,
        member_users=pool.member_users,
        member_teams=pool.member_teams,
        rules=rules_to_pb(pool.rules),
        create_time=timestamp(pool.create_time),
        update_time=timestamp(pool.update_time),
        etag=etag_for(pool.id, pool.version),
    )


def ownership_change_to_pb(change: OwnershipChangeRecord) -> pb.OwnershipChange:
    return pb.OwnershipChange(
        name=change.name,
        reason=REASON_TO_PB[change.reason],
        detail_code=change.detail_code,
        from_owner=change.from_owner,
        to_owner=change.to_owner,
        from_team=change.from_team,
        to_team=change.to_team,
        pool=f"pools/{change.pool_id}" if change.pool_id else "",
        actor=change.actor,
        change_time=timestamp(change.change_time),
    )


def follow_up_input(message: fu_pb.FollowUp) -> FollowUpInput:
    return FollowUpInput(
        type=FOLLOW_UP_TYPE_FROM_PB.get(message.type),
        content=message.content,
        follow_up_time=message.follow_up_time.ToDatetime(tzinfo=UTC)
        if message.HasField("follow_up_time")
        else None,
        next_follow_up_time=message.next_follow_up_time.ToDatetime(tzinfo=UTC)
        if message.HasField("next_follow_up_time")
        else None,
        related_opportunity=message.related_opportunity,
        related_ticket=message.related_ticket,
    )


def follow_up_to_pb(follow_up: FollowUp) -> fu_pb.FollowUp:
    message = fu_pb.FollowUp(
        name=follow_up.name,
        type=FOLLOW_UP_TYPE_TO_PB[follow_up.type],
        content=follow_up.content,
        follow_up_time=timestamp(follow_up.follow_up_time),
        author=follow_up.author,
        related_opportunity=follow_up.related_opportunity,
        related_ticket=follow_up.related_ticket,
        create_time=timestamp(follow_up.create_time),
    )
    if follow_up.next_follow_up_time is not None:
        message.next_follow_up_time.CopyFrom(timestamp(follow_up.next_follow_up_time))
    return message


class PoolListingMasker(OutputMasker):
    """Pool listings show who a customer is, not how to reach them: personal fields stay hidden."""

    def rule(self, field_name: str) -> FieldRule:
        if field_name in ("phone_numbers", "email_addresses", "tax_id", "address"):
            return FieldRule.HIDDEN
        return super().rule(field_name)
