"""Access control: the declarative policy (policy.yaml) and the data scope it grants."""

from crm_shared.access.policy import AccessPolicy, FieldRule, MethodPermission, Scope, ScopeGrant

__all__ = ["AccessPolicy", "FieldRule", "MethodPermission", "Scope", "ScopeGrant"]
