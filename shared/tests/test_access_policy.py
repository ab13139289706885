"""The shipped access policy: scopes per role, field rules, deny by default."""

import pytest
import sqlalchemy as sa

from crm_shared.access import AccessPolicy, FieldRule, Scope
from crm_shared.access.sql import scope_predicate
from crm_shared.errors import PermissionDenied
from crm_shared.principal import Principal

POLICY = AccessPolicy.load()


def who(*roles, subject="u1", team="east"):
    return Principal(subject=subject, roles=frozenset(roles), team=team)


@pytest.mark.parametrize(
    ("role", "action", "scope"),
    [
        ("admin", "read", Scope.ALL),
        ("sales_manager", "read", Scope.TEAM),
        ("sales_rep", "read", Scope.OWN),
        ("sales_rep", "update", Scope.OWN),
        ("sales_rep", "delete", Scope.NONE),
        ("support_agent", "read", Scope.ALL),
        ("support_agent", "update", Scope.NONE),
        ("analyst", "read", Scope.NONE),
        ("nobody", "read", Scope.NONE),
    ],
)
def test_customer_scopes_follow_the_domain_roles(role, action, scope):
    assert POLICY.scope(who(role), "customers", action) is scope


def test_several_roles_get_the_widest_scope():
    assert POLICY.scope(who("sales_rep", "sales_manager"), "customers", "read") is Scope.TEAM


def test_unknown_resource_or_action_is_denied():
    assert POLICY.scope(who("admin"), "spaceships", "read") is Scope.NONE
    with pytest.raises(PermissionDenied) as caught:
        POLICY.grant(who("analyst"), "customers", "read")
    assert caught.value.reason == "ACTION_NOT_ALLOWED"


def test_field_rules_mask_pii_for_support_and_hide_tax_id():
    assert POLICY.field_rule(who("support_agent"), "customers", "phone_numbers") is FieldRule.MASKED
    assert POLICY.field_rule(who("support_agent"), "customers", "tax_id") is FieldRule.HIDDEN
    assert POLICY.field_rule(who("sales_rep"), "customers", "phone_numbers") is FieldRule.READ
    # A second role that may read wins over a masking one.
    assert POLICY.field_rule(who("support_agent", "admin"), "customers", "phone_numbers") is FieldRule.READ


def test_every_rpc_in_the_protos_is_named_by_the_policy():
    """A new RPC is denied until the policy maps it to a resource and action — for every service."""
    import importlib
    import pkgutil

    import crm

    missing, checked = [], 0
    for module_info in pkgutil.walk_packages(crm.__path__, prefix="crm."):
        if not module_info.name.endswith("_service_pb2"):
            continue
        module = importlib.import_module(module_info.name)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                checked += 1
                if POLICY.method_permission(f"/{service.full_name}/{method.name}") is None:
                    missing.append(f"{service.full_name}/{method.name}")
    assert checked > 100
    assert missing == [], f"RPCs missing from policy.yaml: {missing}"


def test_every_policy_method_exists_in_the_protos():
    """The reverse: no stale policy entry for an RPC that was renamed or removed."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    import importlib
    import pkgutil

    import crm

    for module_info in pkgutil.walk_packages(crm.__path__, prefix="crm."):
        if module_info.name.endswith("_service_pb2"):
            importlib.import_module(module_info.name)
    for method_path in POLICY.methods:
        service_name, _, method = method_path.partition("/")
        service = pool.FindServiceByName(service_name)
        assert service.FindMethodByName(method) is not None, method_path


def test_policy_rejects_unknown_roles():
    with pytest.raises(ValueError, match="unknown role 'wizard'"):
        AccessPolicy({"roles": {"admin": ""}, "resources": {"x": {"read": {"wizard": "all"}}}})


def test_scope_predicates():
    table = sa.Table("c", sa.MetaData(), sa.Column("owner", sa.String), sa.Column("team", sa.String))

    def sql(grant):
        return str(
            scope_predicate(grant, owner=table.c.owner, team=table.c.team).compile(
                compile_kwargs={"literal_binds": True}
            )
        )

    assert sql(POLICY.grant(who("sales_rep", subject="bob"), "customers", "read")) == "c.owner = 'bob'"
    assert sql(POLICY.grant(who("sales_manager", team="west"), "customers", "read")) == "c.team = 'west'"
    assert sql(POLICY.grant(who("sales_manager", team=""), "customers", "read")) == "false"
    assert sql(POLICY.grant(who("admin"), "customers", "read")) == "true"
