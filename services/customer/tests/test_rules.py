"""Customer and contact rules: no I/O, just the domain."""

from datetime import UTC, datetime, timedelta

import pytest

from crm_customer.domain.model import CustomerKind, LifecycleStage, Tier
from crm_customer.domain.rules import (
    ContactInput,
    CustomerInput,
    RawContactPoint,
    new_contact,
    new_customer,
    update_customer,
)
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import InvalidArgument, PermissionDenied

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REP = ScopeGrant(Scope.OWN, "alice", "east")
MANAGER = ScopeGrant(Scope.TEAM, "maria", "east")
ADMIN = ScopeGrant(Scope.ALL, "root", "")


def create(data: CustomerInput, grant=REP):
    return new_customer(data, customer_id="c1", now=NOW, grant=grant, phone_region="CN")


def test_defaults_owner_team_kind_and_stage_from_the_caller():
    customer = create(CustomerInput(display_name="  Acme  "))
    assert (customer.display_name, customer.owner, customer.team) == ("Acme", "alice", "east")
    assert customer.kind is CustomerKind.COMPANY
    assert customer.lifecycle_stage is LifecycleStage.PROSPECT
    assert customer.version == 1


def test_contact_points_are_normalized_and_deduplicated():
    customer = create(
        CustomerInput(
            display_name="Acme",
            phone_numbers=[RawContactPoint("138 0013 8000", "mobile"), RawContactPoint("+86 13800138000")],
            email_addresses=[RawContactPoint("Sales@Acme.COM")],
            tax_id="9131-0000 ma1",
            tags=["vip", " vip ", "", "b2b"],
        )
    )
    assert [p.value for p in customer.phones] == ["+8613800138000"]
    assert [e.value for e in customer.emails] == ["sales@acme.com"]
    assert customer.tags == ["vip", "b2b"]
    assert customer.identifiers() == {
        ("phone", "+8613800138000"),
        ("email", "sales@acme.com"),
        ("tax_id", "91310000MA1"),
    }


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidArgument) as caught:
        create(
            CustomerInput(
                display_name=" ",
                phone_numbers=[RawContactPoint("12")],
                email_addresses=[RawContactPoint("ok@example.com"), RawContactPoint("broken@")],
            )
        )
    fields = [v.field for v in caught.value.field_violations]
    assert fields == [
        "customer.display_name",
        "customer.phone_numbers[0].number",
        "customer.email_addresses[1].address",
    ]


def test_rep_cannot_create_for_someone_else_but_a_manager_can_within_the_team():
    with pytest.raises(PermissionDenied):
        create(CustomerInput(display_name="Acme", owner="bob"))
    assert create(CustomerInput(display_name="Acme", owner="bob"), MANAGER).owner == "bob"
    with pytest.raises(PermissionDenied):
        create(CustomerInput(display_name="Acme", owner="bob", team="west"), MANAGER)
    assert create(CustomerInput(display_name="Acme", owner="bob", team="west"), ADMIN).team == "west"


def test_update_changes_only_masked_fields_and_reports_them():
    current = create(CustomerInput(display_name="Acme", industry="steel", tier=Tier.B))
    later = NOW + timedelta(hours=1)
    data = CustomerInput(display_name="Acme Ltd", industry="", tier=Tier.A)
    updated, changed = update_customer(
        current, data, frozenset({"display_name", "tier"}), now=later, grant=REP, phone_region="CN"
    )
    assert changed == ["display_name", "tier"]
    assert (updated.display_name, updated.industry, updated.tier) == ("Acme Ltd", "steel", Tier.A)
    assert (updated.version, updated.update_time) == (2, later)


def test_update_without_real_change_keeps_the_version():
    current = create(CustomerInput(display_name="Acme"))
    same, changed = update_customer(
        current,
        CustomerInput(display_name="Acme"),
        frozenset({"display_name"}),
        now=NOW,
        grant=REP,
        phone_region="CN",
    )
    assert changed == [] and same.version == 1


def test_rep_cannot_reassign_owner_manager_can_within_team():
    current = create(CustomerInput(display_name="Acme"))
    with pytest.raises(PermissionDenied) as caught:
        update_customer(
            current, CustomerInput(owner="bob"), frozenset({"owner"}), now=NOW, grant=REP, phone_region="CN"
        )
    assert caught.value.reason == "OWNER_CHANGE_NOT_ALLOWED"
    updated, changed = update_customer(
        current, CustomerInput(owner="bob"), frozenset({"owner"}), now=NOW, grant=MANAGER, phone_region="CN"
    )
    assert updated.owner == "bob" and changed == ["owner"]


def test_contact_requires_a_name_and_valid_points():
    with pytest.raises(InvalidArgument) as caught:
        new_contact(
            ContactInput(email_addresses=[RawContactPoint("x")]),
            contact_id="k1",
            customer_id="c1",
            now=NOW,
            phone_region="CN",
        )
    assert [v.field for v in caught.value.field_violations] == [
        "contact.display_name",
        "contact.email_addresses[0].address",
    ]


def test_lifecycle_rules():
    from crm_customer.domain import lifecycle
    from crm_customer.domain.model import LifecycleStage as S

    assert lifecycle.after_deal_won(S.PROSPECT) is S.ACTIVE
    assert lifecycle.after_deal_won(S.LOYAL) is S.LOYAL
    assert lifecycle.after_deal_won(S.CHURNED) is S.ACTIVE
    assert lifecycle.after_purchase(S.PROSPECT, 1) is S.ACTIVE
    assert lifecycle.after_purchase(S.ACTIVE, 2) is S.ACTIVE
    assert lifecycle.after_purchase(S.ACTIVE, 3) is S.LOYAL
    assert lifecycle.after_inactivity(S.LOYAL) is S.AT_RISK
    assert lifecycle.after_inactivity(S.PROSPECT) is S.PROSPECT
    assert lifecycle.inactivity_deadline(NOW) == NOW + timedelta(days=90)
