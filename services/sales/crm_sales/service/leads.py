"""Use cases for leads and round-robin assignment rules: one function per command or query.

Writes take a unit of work (rows, outbox events and audit records commit together);
reads take a session. The caller's data scope goes into every query, so a lead
outside it is simply not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from crm.sales.v1 import events_pb2 as events_pb
from crm_sales.adapters import lead_published as published
from crm_sales.adapters.lead_filters import DEFAULT_ORDER, ORDERABLE, lead_filter_schema, sort_keys
from crm_sales.adapters.lead_repository import LeadRepository, RuleRepository
from crm_sales.domain import leads as rules
from crm_sales.domain.leads import AssignmentRule, Lead, LeadInput, RuleInput
from crm_shared.access import AccessPolicy, Scope, ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import (
    PageTokenCodec,
    clamp_page_size,
    parse_list_request,
    query_fingerprint,
)
from crm_shared.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from crm_shared.ids import new_id
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.principal import Principal

RESOURCE = "leads"
RULES = "lead_assignment_rules"
MAX_ASSIGN_BATCH = 100


@dataclass(frozen=True)
class LeadDeps:
    policy: AccessPolicy
    codec: PersonalDataCodec
    page_tokens: PageTokenCodec
    phone_region: str = "CN"


@dataclass(frozen=True)
class LeadPage:
    leads: list[Lead]
    next_page_token: str


@dataclass(frozen=True)
class RulePage:
    rules: list[AssignmentRule]
    next_page_token: str


def not_found(name: str) -> NotFound:
    # The same answer whether the lead does not exist or is outside the caller's scope.
    return NotFound(f"{name} not found", reason="LEAD_NOT_FOUND", metadata={"resource": name})


def rule_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="RULE_NOT_FOUND", metadata={"resource": name})


def _duplicate(kind: str, existing_id: str) -> AlreadyExists:
    existing = f"leads/{existing_id}"
    return AlreadyExists(
        f"an open lead with the same {kind} already exists: {existing}",
        reason="DUPLICATE_LEAD",
        metadata={
            "existing": existing,
            "field": {"email": "email_addresses", "phone": "phone_numbers"}[kind],
        },
    )


def _emit_created(uow, lead: Lead) -> None:
    uow.emit(
        published.SUBJECT_LEAD_CREATED,
        events_pb.LeadCreated(lead=published.lead_snapshot(lead)),
        resource=lead.name,
    )


def _emit_assigned(uow, lead: Lead, from_owner: str) -> None:
    uow.emit(
        published.SUBJECT_LEAD_ASSIGNED,
        events_pb.LeadAssigned(
            lead=published.lead_snapshot(lead), from_owner=from_owner, to_owner=lead.owner
        ),
        resource=lead.name,
    )


async def _auto_assign(uow, lead: Lead) -> Lead:
    """An unowned new lead goes to the next member of the first rule that takes its channel."""
    if lead.owner:
        return lead
    rule_repo = RuleRepository(uow.session)
    rule = await rule_repo.first_matching(lead.source_channel)
    if rule is None or not rule.members:
        return lead
    (owner,), next_index = rules.round_robin(rule, 1)
    await rule_repo.advance(rule, next_index, now=uow.now)
    # Assigned before its first write: still version 1.
    return replace(rules.assign(lead, owner=owner, team=rule.team, now=uow.now), version=lead.version)


async def _add_new_lead(uow, deps: LeadDeps, lead: Lead) -> Lead:
    assigned = await _auto_assign(uow, lead)
    await LeadRepository(uow.session, deps.codec).add(assigned)
    _emit_created(uow, assigned)
    if assigned.owner:
        _emit_assigned(uow, assigned, "")
    uow.audit("created", assigned.name, sorted(_set_fields(assigned)))
    return assigned


def _set_fields(lead: Lead) -> set[str]:
    present = {"display_name", "status"}
    for name in ("company", "title", "source_platform", "external_account_id", "owner", "team"):
        if getattr(lead, name):
            present.add(name)
    if lead.phones:
        present.add("phone_numbers")
    if lead.emails:
        present.add("email_addresses")
    if lead.source_channel:
        present.add("source_channel")
    if lead.campaign_id:
        present.add("campaign")
    if lead.evidence:
        present.add("evidence")
    if lead.score:
        present.add("score")
    if lead.next_follow_up_time:
        present.add("next_follow_up_time")
    return present


async def create_lead(
    uow, deps: LeadDeps, principal: Principal, data: LeadInput, *, allow_duplicate: bool = False
) -> Lead:
    grant = deps.policy.grant(principal, RESOURCE, "create")
    lead = rules.new_lead(data, lead_id=new_id(), now=uow.now, grant=grant, phone_region=deps.phone_region)
    if not allow_duplicate:
        conflict = await LeadRepository(uow.session, deps.codec).find_open_duplicate(lead.identifiers())
        if conflict:
            raise _duplicate(*conflict)
    return await _add_new_lead(uow, deps, lead)


async def capture_lead(uow, deps: LeadDeps, principal: Principal, data: LeadInput) -> tuple[Lead, bool]:
    """A web-form submission: (the new lead, False), or (the open lead it duplicates, True)."""
    grant = deps.policy.grant(principal, RESOURCE, "capture")
    rules.check_capture_contact(
        data.email_addresses[0] if data.email_addresses else "",
        data.phone_numbers[0] if data.phone_numbers else "",
    )
    # Captured leads are never owned by the capturing credential: unassigned until a rule or a manager.
    capture_grant = ScopeGrant(Scope.ALL, grant.subject, "")
    lead = rules.new_lead(
        data, lead_id=new_id(), now=uow.now, grant=capture_grant, phone_region=deps.phone_region, path=""
    )
    repo = LeadRepository(uow.session, deps.codec)
    conflict = await repo.find_open_duplicate(lead.identifiers())
    if conflict:
        existing = await repo.get(conflict[1])
        assert existing is not None
        return existing, True
    return await _add_new_lead(uow, deps, lead), False


async def get_lead(session: AsyncSession, deps: LeadDeps, principal: Principal, lead_id: str) -> Lead:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    lead = await LeadRepository(session, deps.codec).get(lead_id, grant)
    if lead is None:
        raise not_found(f"leads/{lead_id}")
    return lead


async def list_leads(
    session: AsyncSession,
    deps: LeadDeps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> LeadPage:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    repo = LeadRepository(session, deps.codec)
    req = parse_list_request(
        deps.page_tokens,
        collection="leads",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=lead_filter_schema(repo, deps.phone_region),
        order_by=order_by,
        orderable=ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await repo.list(
        grant, where=req.where, sort=sort_keys(req.order.fields), after=req.after, limit=req.limit + 1
    )
    page = req.page(rows, deps.page_tokens)
    return LeadPage(page.items, page.next_page_token)


async def _load_for_write(uow, deps: LeadDeps, grant: ScopeGrant, lead_id: str, etag: str) -> Lead:
    lead = await LeadRepository(uow.session, deps.codec).get(lead_id, grant)
    if lead is None:
        raise not_found(f"leads/{lead_id}")
    check_etag(etag, lead.id, lead.version, resource=lead.name)
    return lead


async def update_lead(
    uow,
    deps: LeadDeps,
    principal: Principal,
    lead_id: str,
    data: LeadInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Lead:
    fields = resolve_update_mask(
        mask_paths, writable=rules.LEAD_WRITABLE_FIELDS, output_only=rules.LEAD_OUTPUT_ONLY_FIELDS
    )
    grant = deps.policy.grant(principal, RESOURCE, "update")
    current = await _load_for_write(uow, deps, grant, lead_id, etag)
    updated, changed = rules.update_lead(current, data, fields, now=uow.now, phone_region=deps.phone_region)
    if not changed:
        return current
    identifiers_changed = bool({"phone_numbers", "email_addresses"} & set(changed))
    repo = LeadRepository(uow.session, deps.codec)
    await repo.save(updated, expected_version=current.version, identifiers_changed=identifiers_changed)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_lead(uow, deps: LeadDeps, principal: Principal, lead_id: str, etag: str) -> None:
    grant = deps.policy.grant(principal, RESOURCE, "delete")
    current = await _load_for_write(uow, deps, grant, lead_id, etag)
    await LeadRepository(uow.session, deps.codec).remove(current.id)
    uow.audit("deleted", current.name, [])


async def assign_lead(
    uow, deps: LeadDeps, principal: Principal, lead_id: str, *, owner: str, team: str, etag: str
) -> Lead:
    grant = deps.policy.grant(principal, RESOURCE, "assign")
    current = await _load_for_write(uow, deps, grant, lead_id, etag)
    target_team = team.strip() or current.team or grant.team
    if grant.scope is Scope.TEAM and target_team != grant.team:
        raise PermissionDenied(
            f"you can only assign leads within your team ({grant.team or 'none'})",
            reason="TEAM_OUTSIDE_SCOPE",
        )
    assigned = rules.assign(current, owner=owner.strip(), team=target_team, now=uow.now)
    await LeadRepository(uow.session, deps.codec).save(assigned, expected_version=current.version)
    _emit_assigned(uow, assigned, current.owner)
    uow.audit("assigned", assigned.name, ["owner", "team", "status"])
    return assigned


async def assign_leads(
    uow, deps: LeadDeps, principal: Principal, rule_id: str, lead_ids: Sequence[str], max_leads: int
) -> list[Lead]:
    """Round-robin over the rule's members; the rotation position is saved with the rule."""
    grant = deps.policy.grant(principal, RESOURCE, "assign")
    rule_grant = deps.policy.grant(principal, RULES, "read")
    rule_repo = RuleRepository(uow.session)
    rule = await rule_repo.get(rule_id, rule_grant, for_update=True)
    if rule is None:
        raise rule_not_found(f"leadAssignmentRules/{rule_id}")
    repo = LeadRepository(uow.session, deps.codec)
    if lead_ids:
        targets = []
        for index, lead_id in enumerate(lead_ids):
            lead = await repo.get(lead_id, grant)
            if lead is None:
                raise NotFound(
                    f"leads/{lead_id} not found",
                    reason="LEAD_NOT_FOUND",
                    metadata={"resource": f"leads/{lead_id}", "field": f"leads[{index}]"},
                )
            rules.transition(lead.status, rules.LeadAction.ASSIGN, lead_name=lead.name)
            targets.append(lead)
    else:
        limit = min(max_leads or MAX_ASSIGN_BATCH, MAX_ASSIGN_BATCH)
        # Unassigned leads have no owner; a manager may take those of their team or of no team yet.
        candidates = await repo.unassigned(rule.source_channels, limit)
        targets = [lead for lead in candidates if grant.scope is Scope.ALL or lead.team in ("", grant.team)]
    if not targets:
        return []
    owners, next_index = rules.round_robin(rule, len(targets))
    assigned: list[Lead] = []
    for lead, owner in zip(targets, owners, strict=True):
        updated = rules.assign(lead, owner=owner, team=rule.team, now=uow.now)
        await repo.save(updated, expected_version=lead.version)
        _emit_assigned(uow, updated, lead.owner)
        uow.audit("assigned", updated.name, ["owner", "team", "status"])
        assigned.append(updated)
    await rule_repo.advance(rule, next_index, now=uow.now)
    return assigned


async def _status_change(uow, deps: LeadDeps, principal: Principal, lead_id: str, etag: str, change) -> Lead:
    grant = deps.policy.grant(principal, RESOURCE, "update")
    current = await _load_for_write(uow, deps, grant, lead_id, etag)
    updated = change(current)
    await LeadRepository(uow.session, deps.codec).save(updated, expected_version=current.version)
    return updated


async def start_working(uow, deps: LeadDeps, principal: Principal, lead_id: str, etag: str) -> Lead:
    grant = deps.policy.grant(principal, RESOURCE, "update")
    current = await _load_for_write(uow, deps, grant, lead_id, etag)
    lead = rules.start_working(current, actor=principal.subject, now=uow.now)
    await LeadRepository(uow.session, deps.codec).save(lead, expected_version=current.version)
    if lead.owner != current.owner:
        # An unowned lead picked up by the caller: an assignment others should hear about.
        _emit_assigned(uow, lead, current.owner)
    uow.audit("started_working", lead.name, ["status", "owner"])
    return lead


async def recycle(uow, deps: LeadDeps, principal: Principal, lead_id: str, etag: str) -> Lead:
    lead = await _status_change(
        uow, deps, principal, lead_id, etag, lambda lead: rules.recycle(lead, now=uow.now)
    )
    uow.audit("recycled", lead.name, ["status"])
    return lead


async def disqualify(uow, deps: LeadDeps, principal: Principal, lead_id: str, reason: str, etag: str) -> Lead:
    if not reason.strip():
        rules.raise_reason_required()
    lead = await _status_change(
        uow, deps, principal, lead_id, etag, lambda lead: rules.disqualify(lead, reason=reason, now=uow.now)
    )
    uow.emit(
        published.SUBJECT_LEAD_DISQUALIFIED,
        events_pb.LeadDisqualified(lead=published.lead_snapshot(lead), reason=lead.disqualify_reason),
        resource=lead.name,
    )
    uow.audit("disqualified", lead.name, ["status", "disqualify_reason"])
    return lead


# --- assignment rules ------------------------------------------------------------------------


async def create_rule(uow, deps: LeadDeps, principal: Principal, data: RuleInput) -> AssignmentRule:
    grant = deps.policy.grant(principal, RULES, "create")
    rule = rules.new_rule(data, rule_id=new_id(), now=uow.now, grant=grant)
    await RuleRepository(uow.session).add(rule)
    uow.audit("created", rule.name, ["display_name", "team", "members", "source_channels"])
    return rule


async def get_rule(
    session: AsyncSession, deps: LeadDeps, principal: Principal, rule_id: str
) -> AssignmentRule:
    grant = deps.policy.grant(principal, RULES, "read")
    rule = await RuleRepository(session).get(rule_id, grant)
    if rule is None:
        raise rule_not_found(f"leadAssignmentRules/{rule_id}")
    return rule


async def list_rules(
    session: AsyncSession, deps: LeadDeps, principal: Principal, *, page_size: int, page_token: str
) -> RulePage:
    grant = deps.policy.grant(principal, RULES, "read")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("lead_assignment_rules", principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await RuleRepository(session).list(grant, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return RulePage(page, token)


async def update_rule(
    uow,
    deps: LeadDeps,
    principal: Principal,
    rule_id: str,
    data: RuleInput,
    mask_paths: Sequence[str],
    etag: str,
) -> AssignmentRule:
    fields = resolve_update_mask(
        mask_paths, writable=rules.RULE_WRITABLE_FIELDS, output_only=rules.RULE_OUTPUT_ONLY_FIELDS
    )
    grant = deps.policy.grant(principal, RULES, "update")
    repo = RuleRepository(uow.session)
    current = await repo.get(rule_id, grant, for_update=True)
    if current is None:
        raise rule_not_found(f"leadAssignmentRules/{rule_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_rule(current, data, fields, now=uow.now, grant=grant)
    if not changed:
        return current
    await repo.save(updated, expected_version=current.version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_rule(uow, deps: LeadDeps, principal: Principal, rule_id: str, etag: str) -> None:
    grant = deps.policy.grant(principal, RULES, "delete")
    repo = RuleRepository(uow.session)
    rule = await repo.get(rule_id, grant)
    if rule is None:
        raise rule_not_found(f"leadAssignmentRules/{rule_id}")
    check_etag(etag, rule.id, rule.version, resource=rule.name)
    await repo.remove(rule.id)
    uow.audit("deleted", rule.name, [])


def invalid_name(field_path: str, pattern: str) -> InvalidArgument:
    return InvalidArgument.for_field(field_path, f"must look like {pattern}")
