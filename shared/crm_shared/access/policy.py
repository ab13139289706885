"""Load the access policy and answer: what may this principal see or do?"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crm_shared.errors import PermissionDenied
from crm_shared.principal import Principal


class Scope(enum.IntEnum):
    """Ordered from narrowest to widest, so a principal with several roles gets the widest."""

    NONE = 0
    OWN = 1
    TEAM = 2
    ALL = 3


class FieldRule(enum.IntEnum):
    """Ordered from most to least restrictive; several roles give the least restrictive."""

    HIDDEN = 0
    MASKED = 1
    READ = 2


@dataclass(frozen=True)
class MethodPermission:
    resource: str
    action: str


@dataclass(frozen=True)
class ScopeGrant:
    """What a principal may touch for one resource/action: the scope plus who they are."""

    scope: Scope
    subject: str
    team: str

    def permits(self, *, owner: str, team: str) -> bool:
        if self.scope is Scope.ALL:
            return True
        if self.scope is Scope.TEAM:
            return bool(self.team) and team == self.team
        if self.scope is Scope.OWN:
            return owner == self.subject
        return False


class AccessPolicy:
    def __init__(self, document: dict[str, Any]) -> None:
        self.roles: dict[str, str] = dict(document.get("roles") or {})
        self._scopes: dict[tuple[str, str, str], Scope] = {}
        for resource, actions in (document.get("resources") or {}).items():
            for action, grants in (actions or {}).items():
                for role, scope in (grants or {}).items():
                    self._check_role(role, f"resources.{resource}.{action}")
                    self._scopes[(resource, action, role)] = Scope[str(scope).upper()]
        self._fields: dict[tuple[str, str, str], FieldRule] = {}
        for resource, fields in (document.get("fields") or {}).items():
            for field_name, rules in (fields or {}).items():
                for role, rule in (rules or {}).items():
                    self._check_role(role, f"fields.{resource}.{field_name}")
                    self._fields[(resource, field_name, role)] = FieldRule[str(rule).upper()]
        self._methods: dict[str, MethodPermission] = {
            method: MethodPermission(spec["resource"], spec["action"])
            for method, spec in (document.get("methods") or {}).items()
        }

    def _check_role(self, role: str, where: str) -> None:
        if role not in self.roles:
            raise ValueError(f"access policy: unknown role {role!r} in {where}")

    @classmethod
    def load(cls, path: Path | None = None) -> AccessPolicy:
        """The given file, or the policy shipped with crm_shared."""
        text = (
            path.read_text()
            if path is not None
            else resources.files("crm_shared.access").joinpath("policy.yaml").read_text()
        )
        return cls(yaml.safe_load(text))

    # --- questions services ask ------------------------------------------------------------------

    def scope(self, principal: Principal, resource: str, action: str) -> Scope:
        return max(
            (self._scopes.get((resource, action, role), Scope.NONE) for role in principal.roles),
            default=Scope.NONE,
        )

    def grant(self, principal: Principal, resource: str, action: str) -> ScopeGrant:
        """The caller's scope, raising PERMISSION_DENIED when it is none."""
        scope = self.scope(principal, resource, action)
        if scope is Scope.NONE:
            raise PermissionDenied(
                f"your roles do not allow {action} on {resource}",
                reason="ACTION_NOT_ALLOWED",
                metadata={"resource": resource, "action": action},
            )
        return ScopeGrant(scope, principal.subject, principal.team)

    def field_rule(self, principal: Principal, resource: str, field_name: str) -> FieldRule:
        return max(
            (self._fields.get((resource, field_name, role), FieldRule.READ) for role in principal.roles),
            default=FieldRule.HIDDEN,
        )

    def method_permission(self, full_method: str) -> MethodPermission | None:
        """For "/pkg.Service/Method" or "pkg.Service/Method"; None when the policy does not name it."""
        return self._methods.get(full_method.lstrip("/"))

    @property
    def methods(self) -> dict[str, MethodPermission]:
        return dict(self._methods)
