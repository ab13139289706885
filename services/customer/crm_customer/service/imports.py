"""ImportCustomers: rows validated and written in batches, one transaction per batch.

Why it is faster than one CreateCustomer per row: a batch pays for one
transaction, one blind-index lookup for every row's natural keys (set-based)
and a handful of multi-row INSERTs, instead of a round trip, a transaction and
several statements per row. The rules are the same as CreateCustomer /
UpdateCustomer (domain/rules.py), so a row is accepted exactly when the
equivalent call would be.

Resume: every row is recorded in import_job_rows (row number, outcome,
checksum of its raw values) in the transaction that applies it. A stream with
the same job id skips the rows already recorded with the same checksum, so an
interrupted import can be streamed again from the start without duplicates.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from crm.customer.v1 import data_events_pb2 as data_events_pb
from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.child_tables import child_tables
from crm_customer.adapters.import_repository import ImportJobRepository, ImportRepository
from crm_customer.adapters.tables import contacts
from crm_customer.domain import rules
from crm_customer.domain.custom_fields import validate_custom_fields
from crm_customer.domain.import_rows import ParsedRow, parse_row, row_checksum, row_identifiers
from crm_customer.domain.model import Customer, CustomerStatus
from crm_customer.service import custom_fields
from crm_customer.service.customers import CustomerDeps
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from crm_shared.ids import new_id
from crm_shared.principal import Principal

RESOURCE = "customer_imports"
SUBJECT_IMPORT_COMPLETED = "crm.customer.import.completed"
DEFAULT_BATCH_SIZE = 500
_FIELD_OF_KIND = {"email": "email_addresses", "phone": "phone_numbers", "tax_id": "tax_id"}


class Mode(enum.StrEnum):
    CREATE_ONLY = "create_only"
    UPSERT = "upsert"
    UPDATE_ONLY = "update_only"


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    ALREADY_APPLIED = "already_applied"
    REVERTED = "reverted"


class JobState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    REVERTED = "reverted"


@dataclass(frozen=True)
class ImportHeader:
    job_id: str
    mode: Mode
    source: str = ""
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass
class RowResult:
    row_number: int
    outcome: Outcome
    customer_id: str = ""
    reason: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass
class JobView:
    id: str
    mode: Mode
    source: str
    state: JobState
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    processed_rows: int = 0
    created_rows: int = 0
    updated_rows: int = 0
    unchanged_rows: int = 0
    rejected_rows: int = 0
    reverted_rows: int = 0
    revert_kept_rows: int = 0
    skipped_rows: int = 0
    dry_run: bool = False

    @property
    def name(self) -> str:
        return f"importJobs/{self.id}"

    @classmethod
    def from_row(cls, row) -> JobView:
        return cls(
            id=row.id,
            mode=Mode(row.mode),
            source=row.source,
            state=JobState(row.state),
            owner=row.owner,
            team=row.team,
            create_time=row.create_time,
            update_time=row.update_time,
            processed_rows=row.processed_rows,
            created_rows=row.created_rows,
            updated_rows=row.updated_rows,
            unchanged_rows=row.unchanged_rows,
            rejected_rows=row.rejected_rows,
            reverted_rows=row.reverted_rows,
            revert_kept_rows=row.revert_kept_rows,
        )


@dataclass
class _Screened:
    results: dict[int, RowResult] = field(default_factory=dict)
    checksums: dict[int, str] = field(default_factory=dict)
    parsed: dict[int, ParsedRow] = field(default_factory=dict)
    replaced: list[int] = field(default_factory=list)  # rows an earlier attempt rejected, now retried


@dataclass
class _BatchWrites:
    loaded: dict[str, Customer]  # stored customers the batch's rows match (in the update scope)
    pending: dict[str, Customer] = field(default_factory=dict)  # created, inserted at the end
    saved_versions: dict[str, int] = field(default_factory=dict)  # updated: version before
    events: list[tuple[str, Customer, list[str]]] = field(default_factory=list)


_COUNTER = {
    Outcome.CREATED: "created_rows",
    Outcome.UPDATED: "updated_rows",
    Outcome.UNCHANGED: "unchanged_rows",
    Outcome.REJECTED: "rejected_rows",
}


def job_not_found(job_id: str) -> NotFound:
    name = f"importJobs/{job_id}"
    return NotFound(f"{name} not found", reason="IMPORT_JOB_NOT_FOUND", metadata={"resource": name})


def _rejected(row_number: int, error: DomainError) -> RowResult:
    fields = sorted({_api_field(v.field) for v in error.field_violations})
    reason = error.message
    if error.field_violations:
        reason = "; ".join(f"{_api_field(v.field)}: {v.description}" for v in error.field_violations)
    return RowResult(row_number, Outcome.REJECTED, reason=reason, fields=fields)


def _api_field(path: str) -> str:
    """ "customer.email_addresses[0].address" -> "email_addresses"."""
    return path.removeprefix("customer.").split("[")[0].split(".")[0]


def _with_checked_custom_fields(row: ParsedRow, definitions, *, creating: bool) -> ParsedRow:
    """The row with its custom fields validated and normalized; INVALID_ARGUMENT rejects the row.

    A new customer must carry every required field; an update only checks what the row sets.
    Unique custom fields are not claimed by imports (see the import ADR)."""
    if not creating and "custom_fields" not in row.fields:
        return row
    normalized, violations = validate_custom_fields(
        definitions, row.data.custom_fields, path="customer.custom_fields", check_required=creating
    )
    if violations:
        raise InvalidArgument("invalid custom fields", field_violations=violations)
    return replace(row, data=replace(row.data, custom_fields=normalized))


class ImportRun:
    """One stream of an import job: start, then apply_batch for each batch, then finish."""

    def __init__(self, uow_factory, deps: CustomerDeps, principal: Principal, header: ImportHeader) -> None:
        self._uow_factory = uow_factory
        self._deps = deps
        self._principal = principal
        self.header = header
        self._create_grant: ScopeGrant | None = None
        self._update_grant: ScopeGrant | None = None
        # (kind, digest) -> customer id, for rows this stream created or updated (dry runs and
        # rows of the same batch see each other through it).
        self._claimed: dict[tuple[str, str], str] = {}
        self.job: JobView | None = None

    def _grants(self) -> None:
        policy, principal = self._deps.policy, self._principal
        policy.grant(principal, RESOURCE, "create")
        if self.header.mode is not Mode.UPDATE_ONLY:
            self._create_grant = policy.grant(principal, "customers", "create")
        if self.header.mode is not Mode.CREATE_ONLY:
            self._update_grant = policy.grant(principal, "customers", "update")

    async def start(self) -> JobView:
        self._grants()
        header = self.header
        async with self._uow_factory() as uow:
            jobs = ImportJobRepository(uow.session)
            row = await jobs.get(header.job_id)
            if row is not None:
                if row.owner != self._principal.subject:
                    raise job_not_found(header.job_id)  # someone else's job id: do not leak it
                if row.mode != header.mode.value:
                    raise FailedPrecondition(
                        f"importJobs/{row.id} was started in mode {row.mode}; resume it with the same mode",
                        reason="IMPORT_MODE_MISMATCH",
                    )
                if row.state == JobState.REVERTED.value:
                    raise FailedPrecondition(f"importJobs/{row.id} was reverted", reason="IMPORT_REVERTED")
                if not header.dry_run and row.state != JobState.RUNNING.value:
                    await jobs.update(row.id, state=JobState.RUNNING.value, update_time=uow.now)
                    await uow.commit()
                self.job = replace(JobView.from_row(row), state=JobState.RUNNING, dry_run=header.dry_run)
                return self.job
            self.job = JobView(
                id=header.job_id,
                mode=header.mode,
                source=header.source,
                state=JobState.RUNNING,
                owner=self._principal.subject,
                team=self._principal.team,
                create_time=uow.now,
                update_time=uow.now,
                dry_run=header.dry_run,
            )
            if not header.dry_run:
                await jobs.insert(
                    id=header.job_id,
                    mode=header.mode.value,
                    source=header.source,
                    state=JobState.RUNNING.value,
                    owner=self._principal.subject,
                    team=self._principal.team,
                    create_time=uow.now,
                    update_time=uow.now,
                )
                uow.audit("import_started", self.job.name, ["mode", "source"])
                await uow.commit()
        return self.job

    async def apply_batch(self, rows: Sequence[tuple[int, dict[str, str]]]) -> list[RowResult]:
        assert self.job is not None, "start() first"
        async with self._uow_factory() as uow:
            try:
                results = await self._apply(uow, rows)
            except IntegrityError:
                # A concurrent CreateCustomer took one of these emails/phones (PostgreSQL). Nothing of
                # this batch was written; streaming the job again resumes here.
                raise Aborted(
                    "a customer with one of this batch's emails, phones or tax ids was created at the same "
                    "moment; stream the job again to resume",
                    reason="CONCURRENT_DUPLICATE",
                ) from None
            if self.header.dry_run:
                await uow.rollback()
            else:
                await uow.commit()
        return results

    async def _apply(self, uow, rows: Sequence[tuple[int, dict[str, str]]]) -> list[RowResult]:
        repo = ImportRepository(uow.session, self._deps.codec)
        jobs = ImportJobRepository(uow.session)
        ledger = {} if self.header.dry_run else await jobs.ledger(self.job.id, [n for n, _ in rows])
        screened = self._screen(rows, ledger)
        results, parsed = screened.results, screened.parsed

        # One blind-index lookup and one load for the whole batch: the set-based part.
        keys = {n: row_identifiers(p.data, self._deps.phone_region) for n, p in parsed.items()}
        digests = {n: {(k, repo.identifier_digest(k, v)) for k, v in ids} for n, ids in keys.items()}
        stored = await repo.owners_of(d for ds in digests.values() for d in ds)
        matched_ids = {cid for ds in digests.values() for d in ds if (cid := stored.get(d))}
        loaded = (
            await repo.get_many(sorted(matched_ids), self._update_grant)
            if self._update_grant is not None
            else {}
        )
        batch = _BatchWrites(loaded=loaded)
        definitions = await custom_fields.customer_definitions(uow.session)
        for number in sorted(parsed):
            matches = {self._claimed.get(d) or stored.get(d) for d in digests[number]} - {None}
            try:
                # Custom fields follow the same definitions as CreateCustomer/UpdateCustomer.
                parsed[number] = _with_checked_custom_fields(
                    parsed[number], definitions, creating=not matches
                )
                if len(matches) > 1:
                    names = ", ".join(f"customers/{m}" for m in sorted(matches))
                    raise FailedPrecondition(f"matches several customers: {names}")
                if matches:
                    (existing_id,) = matches
                    result = await self._update_existing(
                        uow, repo, number, parsed[number], existing_id, digests[number], batch
                    )
                else:
                    result = self._create(uow, number, parsed[number], digests[number], batch)
            except DomainError as error:
                result = _rejected(number, error)
            results[number] = result

        await repo.add_many(list(batch.pending.values()))
        for customer_id, version in batch.saved_versions.items():
            await repo.save(batch.loaded[customer_id], expected_version=version)
        self._emit(uow, batch)
        ordered = [results[n] for n in sorted(results)]
        await self._record(uow, jobs, ordered, screened, ledger)
        return ordered

    def _screen(self, rows: Sequence[tuple[int, dict[str, str]]], ledger: dict) -> _Screened:
        """Checksums, resume decisions against the ledger, and cleaning (parse) of each row."""
        screened = _Screened()
        results, parsed = screened.results, screened.parsed
        for number, values in rows:
            checksum = screened.checksums[number] = row_checksum(values)
            if number in results or number in parsed:
                results[number] = RowResult(number, Outcome.REJECTED, reason=f"row number {number} repeated")
                parsed.pop(number, None)
                continue
            previous = ledger.get(number)
            if previous is not None:
                if previous.checksum == checksum:
                    results[number] = RowResult(
                        number,
                        Outcome.ALREADY_APPLIED,
                        customer_id=previous.customer_id,
                        reason=previous.reason,
                    )
                    continue
                if previous.outcome != Outcome.REJECTED.value:
                    results[number] = RowResult(
                        number,
                        Outcome.REJECTED,
                        customer_id=previous.customer_id,
                        reason=f"row {number} was already applied with different values (checksum mismatch)",
                    )
                    continue
                screened.replaced.append(number)
            try:
                parsed[number] = parse_row(values)
            except DomainError as error:
                results[number] = _rejected(number, error)
        return screened

    def _emit(self, uow, batch: _BatchWrites) -> None:
        for kind, recorded, changed in batch.events:
            if kind == "created":
                customer = batch.pending[recorded.id]  # a later row of the batch may have updated it
                uow.emit(
                    published.SUBJECT_CUSTOMER_CREATED,
                    events_pb.CustomerCreated(customer=published.customer_snapshot(customer)),
                    resource=customer.name,
                )
            else:
                customer = recorded
                uow.emit(
                    published.SUBJECT_CUSTOMER_UPDATED,
                    events_pb.CustomerUpdated(
                        customer=published.customer_snapshot(customer), changed_fields=changed
                    ),
                    resource=customer.name,
                )
            uow.audit(f"imported_{kind}", customer.name, changed)

    async def _record(self, uow, jobs, ordered: list[RowResult], screened: _Screened, ledger: dict) -> None:
        """The ledger rows and the job's counters, in the batch's transaction."""
        job, replaced = self.job, screened.replaced
        fresh = [r for r in ordered if r.outcome is not Outcome.ALREADY_APPLIED]
        # A row refused as "already applied with different values" keeps its original ledger entry.
        fresh = [r for r in fresh if not (r.row_number in ledger and r.row_number not in replaced)]
        deltas = dict.fromkeys(_COUNTER.values(), 0)
        deltas["processed_rows"] = len(fresh) - len(replaced)
        deltas["rejected_rows"] -= len(replaced)
        for result in fresh:
            deltas[_COUNTER[result.outcome]] += 1
        job.skipped_rows += sum(r.outcome is Outcome.ALREADY_APPLIED for r in ordered)
        for name, delta in deltas.items():
            setattr(job, name, getattr(job, name) + delta)
        job.update_time = uow.now
        if self.header.dry_run:
            return
        entries = [
            {
                "row_number": r.row_number,
                "outcome": r.outcome.value,
                "customer_id": r.customer_id,
                "reason": r.reason,
                "checksum": screened.checksums[r.row_number],
            }
            for r in fresh
        ]
        await jobs.record(job.id, entries, replaced)
        await jobs.add_counts(job.id, deltas, uow.now)

    def _create(self, uow, number, row, digests, batch: _BatchWrites) -> RowResult:
        if self.header.mode is Mode.UPDATE_ONLY:
            if not digests:
                raise FailedPrecondition("the row has no email, phone or tax id to find the customer by")
            raise FailedPrecondition("no customer with this email, phone or tax id (mode update_only)")
        customer = rules.new_customer(
            row.data,
            customer_id=new_id(),
            now=uow.now,
            grant=self._create_grant,
            phone_region=self._deps.phone_region,
        )
        batch.pending[customer.id] = customer
        for digest in digests:
            self._claimed[digest] = customer.id
        batch.events.append(("created", customer, sorted(row.fields)))
        return RowResult(number, Outcome.CREATED, customer_id=customer.id)

    async def _update_existing(
        self, uow, repo, number, row, existing_id, digests, batch: _BatchWrites
    ) -> RowResult:
        pending, loaded = batch.pending, batch.loaded
        if self.header.mode is Mode.CREATE_ONLY:
            kinds = sorted({_FIELD_OF_KIND[k] for k, _ in digests})
            return RowResult(
                number,
                Outcome.REJECTED,
                customer_id=existing_id,
                reason=f"duplicate of customers/{existing_id}",
                fields=kinds,
            )
        current = pending.get(existing_id) or loaded.get(existing_id)
        if current is None:
            raise PermissionDenied("matches an existing customer outside your data scope")
        if current.status is CustomerStatus.MERGED:
            raise FailedPrecondition(
                f"matches customers/{existing_id}, merged into customers/{current.merged_into}"
            )
        updated, changed = rules.update_customer(
            current,
            row.data,
            row.fields,
            now=uow.now,
            grant=self._update_grant,
            phone_region=self._deps.phone_region,
        )
        if not changed:
            return RowResult(number, Outcome.UNCHANGED, customer_id=existing_id)
        if {"phone_numbers", "email_addresses", "tax_id"} & set(changed):
            new_digests = {(k, repo.identifier_digest(k, v)) for k, v in updated.identifiers()}
            taken = await repo.owners_of(new_digests)
            for digest in new_digests:
                owner = self._claimed.get(digest) or taken.get(digest)
                if owner and owner != existing_id:
                    raise FailedPrecondition(
                        f"its {digest[0].replace('_', ' ')} already belongs to customers/{owner}"
                    )
            for digest in new_digests:
                self._claimed[digest] = existing_id
        if existing_id in pending:
            pending[existing_id] = replace(updated, version=1)
            return RowResult(number, Outcome.UPDATED, customer_id=existing_id)
        batch.saved_versions.setdefault(existing_id, current.version)
        loaded[existing_id] = updated
        batch.events.append(("updated", updated, changed))
        return RowResult(number, Outcome.UPDATED, customer_id=existing_id)

    async def finish(self) -> JobView:
        job = self.job
        assert job is not None
        job.state = JobState.COMPLETED
        if self.header.dry_run:
            return job
        async with self._uow_factory() as uow:
            await ImportJobRepository(uow.session).update(
                job.id, state=JobState.COMPLETED.value, update_time=uow.now
            )
            uow.emit(
                SUBJECT_IMPORT_COMPLETED,
                data_events_pb.ImportJobCompleted(
                    job=job.name,
                    mode=job.mode.value,
                    processed_rows=job.processed_rows,
                    created_rows=job.created_rows,
                    updated_rows=job.updated_rows,
                    unchanged_rows=job.unchanged_rows,
                    rejected_rows=job.rejected_rows,
                ),
                resource=job.name,
            )
            uow.audit("import_completed", job.name, [])
            await uow.commit()
        return job


def _visible_job(row, grant: ScopeGrant) -> bool:
    if grant.scope is Scope.OWN:
        return row.owner == grant.subject
    return grant.permits(owner=row.owner, team=row.team)


async def get_import_job(session, deps: CustomerDeps, principal: Principal, job_id: str) -> JobView:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    row = await ImportJobRepository(session).get(job_id)
    if row is None or not _visible_job(row, grant):
        raise job_not_found(job_id)
    return JobView.from_row(row)


@dataclass
class RevertOutcome:
    job: JobView
    deleted: int
    kept: list[str]


async def revert_import_job(uow, deps: CustomerDeps, principal: Principal, job_id: str) -> RevertOutcome:
    """Delete the customers the job created that nobody touched since (same version, no children)."""
    grant = deps.policy.grant(principal, RESOURCE, "delete")
    jobs = ImportJobRepository(uow.session)
    row = await jobs.get(job_id)
    if row is None or not _visible_job(row, grant):
        raise job_not_found(job_id)
    repo = ImportRepository(uow.session, deps.codec)
    created = await jobs.created_rows(job_id)
    customers_by_id = await repo.get_many([r.customer_id for r in created], ScopeGrant(Scope.ALL, "", ""))
    touched = await _with_children([r.customer_id for r in created], uow.session)
    reverted, kept = [], []
    for entry in created:
        customer = customers_by_id.get(entry.customer_id)
        if customer is None:  # deleted by someone since: nothing left to revert
            reverted.append(entry.row_number)
            continue
        if customer.version != 1 or customer.status is not CustomerStatus.OWNED or customer.id in touched:
            kept.append(customer.name)
            continue
        await repo.remove(customer.id)
        reverted.append(entry.row_number)
        uow.emit(
            published.SUBJECT_CUSTOMER_DELETED,
            events_pb.CustomerDeleted(customer=customer.name, owner=customer.owner, team=customer.team),
            resource=customer.name,
        )
        uow.audit("deleted", customer.name, ["import_reverted"])
    await jobs.mark_reverted(job_id, reverted)
    await jobs.update(
        job_id,
        state=JobState.REVERTED.value,
        reverted_rows=row.reverted_rows + len(reverted),
        revert_kept_rows=len(kept),
        update_time=uow.now,
    )
    uow.audit("reverted", f"importJobs/{job_id}", [])
    job = JobView.from_row(await jobs.get(job_id))
    return RevertOutcome(job, len(reverted), kept)


async def _with_children(customer_ids: list[str], session) -> set[str]:
    """Customers that gained contacts or any other child rows since the import."""
    import sqlalchemy as sa

    found: set[str] = set()
    for table in [contacts, *child_tables()]:
        for start in range(0, len(customer_ids), 500):
            chunk = customer_ids[start : start + 500]
            rows = await session.execute(
                sa.select(table.c.customer_id).where(table.c.customer_id.in_(chunk)).distinct()
            )
            found.update(r.customer_id for r in rows)
    return found
