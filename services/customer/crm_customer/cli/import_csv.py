"""`import`: CSV + column mapping -> ImportCustomers (bidirectional stream) with a progress bar.

Row numbers are the data lines of the file (1 = the first line after the header),
so streaming the same file again with the same job id resumes it exactly.
"""

from __future__ import annotations

import csv
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml

from crm.customer.v1 import customer_data_service_pb2 as rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as rpc_grpc
from crm_customer.cli.progress import Progress

ROWS_PER_MESSAGE = 100
MODES = {
    "create-only": rpc.IMPORT_MODE_CREATE_ONLY,
    "upsert": rpc.IMPORT_MODE_UPSERT,
    "update-only": rpc.IMPORT_MODE_UPDATE_ONLY,
}


def load_mapping(path: str) -> tuple[dict[str, str], str | None]:
    """YAML `columns: {CSV column: target field}` (or a plain mapping), optional `mode`."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    columns = document.get("columns", document) if isinstance(document, dict) else None
    if not isinstance(columns, dict) or not columns:
        raise SystemExit(f"{path}: expected `columns: {{CSV column: target field}}`")
    columns = {str(k): str(v) for k, v in columns.items() if k != "mode"}
    mode = document.get("mode") if isinstance(document.get("mode"), str) else None
    return columns, mode


def read_rows(path: str, columns: dict[str, str], encoding: str) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding=encoding) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: the mapping names columns the file lacks: {', '.join(missing)}")
        for number, record in enumerate(reader, start=1):
            yield number, {target: (record.get(column) or "") for column, target in columns.items()}


def count_rows(path: str, encoding: str) -> int:
    with open(path, newline="", encoding=encoding) as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def write_report(path: str, report) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "outcome", "customer", "reason"])
        for r in report:
            outcome = rpc.ImportRowOutcome.Name(r.outcome).removeprefix("IMPORT_ROW_OUTCOME_").lower()
            writer.writerow([r.row_number, outcome, r.customer, r.reason])


async def run_import(channel, metadata, args) -> int:
    columns, mapping_mode = load_mapping(args.mapping)
    mode = args.mode or mapping_mode or "create-only"
    if mode not in MODES:
        raise SystemExit(f"unknown mode {mode!r}: {', '.join(MODES)}")
    job_id = args.job_id or str(uuid.uuid4())
    total = count_rows(args.file, args.encoding)
    print(
        f"import job {job_id} ({mode}{', dry run' if args.dry_run else ''}): {total} rows from {args.file}",
        file=sys.stderr,
    )
    print(f"  resume with: --job-id {job_id}", file=sys.stderr)

    def requests():
        yield rpc.ImportCustomersRequest(
            header=rpc.ImportJobHeader(
                job_id=job_id,
                mode=MODES[mode],
                source=Path(args.file).name,
                dry_run=args.dry_run,
                batch_size=args.batch_size,
            )
        )
        chunk = []
        for number, values in read_rows(args.file, columns, args.encoding):
            chunk.append(rpc.ImportRow(row_number=number, values=values))
            if len(chunk) == ROWS_PER_MESSAGE:
                yield rpc.ImportCustomersRequest(rows=rpc.ImportRows(rows=chunk))
                chunk = []
        if chunk:
            yield rpc.ImportCustomersRequest(rows=rpc.ImportRows(rows=chunk))

    stub = rpc_grpc.CustomerDataServiceStub(channel)
    progress = Progress(total)
    report = []
    job = None
    done = 0
    async for response in stub.ImportCustomers(requests(), metadata=metadata):
        job = response.job
        done += len(response.results)
        report.extend(response.results)
        progress.update(
            done,
            f"created {job.created_rows} updated {job.updated_rows} rejected {job.rejected_rows}"
            f" skipped {job.skipped_rows}",
            force=not response.results,
        )
    progress.close()
    rejected = [r for r in report if r.outcome == rpc.IMPORT_ROW_OUTCOME_REJECTED]
    if args.report:
        write_report(args.report, report)
    for r in rejected[:20]:
        print(f"  row {r.row_number}: {r.reason}", file=sys.stderr)
    if len(rejected) > 20:
        print(f"  ... {len(rejected) - 20} more rejected rows (see --report)", file=sys.stderr)
    state = rpc.ImportJobState.Name(job.state).removeprefix("IMPORT_JOB_STATE_").lower() if job else "?"
    print(
        f"{job.name if job else job_id}: {state}; created {job.created_rows}, updated {job.updated_rows}, "
        f"unchanged {job.unchanged_rows}, rejected {job.rejected_rows}, skipped (already applied) "
        f"{job.skipped_rows}",
        file=sys.stderr,
    )
    return 1 if rejected else 0
