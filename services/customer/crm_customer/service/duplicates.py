"""FindDuplicates: exact matches through blind indexes, fuzzy matches on names.

Exact: the normalized email / phone / tax id's blind-index digest, one set-based
query for every customer examined. Fuzzy: name (+ a person's company) keys of
every customer in the caller's scope, scored with rapidfuzz; the key list is
built once per request (ids and names only, nothing to decrypt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customer_identifiers, customers
from crm_customer.domain import similarity
from crm_customer.domain.model import Customer, CustomerKind, CustomerStatus
from crm_customer.service.customers import CustomerDeps, not_found
from crm_shared.access import ScopeGrant
from crm_shared.aip.paging import SortKey, clamp_page_size, query_fingerprint
from crm_shared.principal import Principal

RESOURCE = "customer_duplicates"
DEFAULT_MIN_SCORE = 85
DEFAULT_MAX_CANDIDATES = 10
EXACT_KINDS = ("email", "phone", "tax_id")


@dataclass
class Candidate:
    customer_id: str
    display_name: str
    score: int
    match_kinds: list[str] = field(default_factory=list)  # exact_email, ..., fuzzy_name


@dataclass
class DuplicateSet:
    customer: str  # "" for a probe
    candidates: list[Candidate]


def _company(customer: Customer) -> str:
    if customer.kind is CustomerKind.PERSON:
        return str(customer.custom_fields.get("company", ""))
    return ""


class _Finder:
    def __init__(self, session, deps: CustomerDeps, grant: ScopeGrant, min_score: int, limit: int) -> None:
        self.session = session
        self.repo = CustomerRepository(session, deps.codec)
        self.grant = grant
        self.min_score = min_score
        self.limit = limit
        self._keys: dict[str, str] | None = None
        self._names: dict[str, str] = {}

    def _live(self) -> sa.ColumnElement[bool]:
        return sa.and_(self.repo.visible(self.grant), customers.c.status != CustomerStatus.MERGED.value)

    async def _name_keys(self) -> dict[str, str]:
        if self._keys is None:
            rows = await self.session.execute(
                sa.select(
                    customers.c.id, customers.c.display_name, customers.c.kind, customers.c.custom_fields
                ).where(self._live())
            )
            self._keys = {}
            for row in rows:
                company = (row.custom_fields or {}).get("company", "") if row.kind == "person" else ""
                self._keys[row.id] = similarity.match_key(row.display_name, str(company))
                self._names[row.id] = row.display_name
        return self._keys

    async def exact(self, examined: list[tuple[str, Customer]]) -> dict[str, dict[str, list[str]]]:
        """examined (key, customer) -> {key: {other customer id: [match kinds]}} in one query."""
        wanted: dict[tuple[str, str], list[str]] = {}
        for key, customer in examined:
            for kind, value in customer.identifiers():
                wanted.setdefault((kind, self.repo.identifier_digest(kind, value)), []).append(key)
        found: dict[str, dict[str, list[str]]] = {}
        if not wanted:
            return found
        rows = await self.session.execute(
            sa.select(customer_identifiers.c.kind, customer_identifiers.c.digest, customers.c.id)
            .join(customers, customers.c.id == customer_identifiers.c.customer_id)
            .where(sa.tuple_(customer_identifiers.c.kind, customer_identifiers.c.digest).in_(list(wanted)))
            .where(self._live())
        )
        for row in rows:
            for key in wanted[(row.kind, row.digest)]:
                found.setdefault(key, {}).setdefault(row.id, []).append(f"exact_{row.kind}")
        return found

    async def candidates(self, key: str, customer: Customer, exact: dict[str, list[str]]) -> list[Candidate]:
        keys = await self._name_keys()
        by_id: dict[str, Candidate] = {}
        for other_id, kinds in exact.items():
            if other_id != customer.id:
                by_id[other_id] = Candidate(other_id, self._names.get(other_id, ""), 100, sorted(kinds))
        choices = {i: k for i, k in keys.items() if i != customer.id}
        target = similarity.match_key(customer.display_name, _company(customer))
        for other_id, value in similarity.best_matches(
            target, choices, min_score=self.min_score, limit=self.limit
        ):
            candidate = by_id.setdefault(other_id, Candidate(other_id, self._names[other_id], value))
            candidate.match_kinds.append("fuzzy_name")
            candidate.score = max(candidate.score, value)
        ranked = sorted(by_id.values(), key=lambda c: (-c.score, c.customer_id))
        for candidate in ranked:
            candidate.display_name = candidate.display_name or self._names.get(candidate.customer_id, "")
        return ranked[: self.limit]


def _finder(session, deps, principal, min_score: int, max_candidates: int) -> _Finder:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    return _Finder(
        session,
        deps,
        grant,
        min_score or DEFAULT_MIN_SCORE,
        clamp_page_size(max_candidates, default=DEFAULT_MAX_CANDIDATES, maximum=50),
    )


async def duplicates_of_customer(
    session,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    min_score: int,
    max_candidates: int,
) -> DuplicateSet:
    finder = _finder(session, deps, principal, min_score, max_candidates)
    customer = await finder.repo.get(customer_id, finder.grant)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    exact = await finder.exact([(customer.id, customer)])
    return DuplicateSet(
        customer.name, await finder.candidates(customer.id, customer, exact.get(customer.id, {}))
    )


async def duplicates_of_probe(
    session, deps: CustomerDeps, principal: Principal, probe: Customer, *, min_score: int, max_candidates: int
) -> DuplicateSet:
    finder = _finder(session, deps, principal, min_score, max_candidates)
    exact = await finder.exact([("probe", probe)])
    return DuplicateSet("", await finder.candidates("probe", probe, exact.get("probe", {})))


async def scan_duplicates(
    session,
    deps: CustomerDeps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    min_score: int,
    max_candidates: int,
) -> tuple[list[DuplicateSet], str]:
    finder = _finder(session, deps, principal, min_score, max_candidates)
    limit = clamp_page_size(page_size, default=50, maximum=200)
    query = query_fingerprint("duplicates-scan", principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    sort = [SortKey(customers.c.create_time), SortKey(customers.c.id)]
    page = await finder.repo.list(finder.grant, where=None, sort=sort, after=after, limit=limit + 1)
    page, more = page[:limit], len(page) > limit
    exact = await finder.exact([(c.id, c) for c in page])
    sets = []
    for customer in page:
        found = await finder.candidates(customer.id, customer, exact.get(customer.id, {}))
        if found:
            sets.append(DuplicateSet(customer.name, found))
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return sets, token


def probe_customer(data, phone_region: str) -> Customer:
    """Values not stored anywhere, as a Customer to compare (only normalizable identifiers count)."""
    from datetime import UTC, datetime

    from crm_customer.domain.import_rows import row_identifiers
    from crm_customer.domain.model import ContactPoint

    keys = row_identifiers(data, phone_region)
    now = datetime.now(UTC)
    return Customer(
        id="",
        kind=data.kind or CustomerKind.COMPANY,
        display_name=data.display_name.strip(),
        owner="",
        team="",
        create_time=now,
        update_time=now,
        phones=[ContactPoint(v) for k, v in sorted(keys) if k == "phone"],
        emails=[ContactPoint(v) for k, v in sorted(keys) if k == "email"],
        tax_id=next((v for k, v in keys if k == "tax_id"), ""),
        custom_fields=dict(data.custom_fields),
    )
