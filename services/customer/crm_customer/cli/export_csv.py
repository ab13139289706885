"""`export`: ExportCustomers (server stream) -> CSV, with a running count on stderr."""

from __future__ import annotations

import contextlib
import csv
import sys

from google.protobuf import json_format

from crm.customer.v1 import customer_data_service_pb2 as rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as rpc_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm_customer.cli.progress import Progress

COLUMNS = [
    "name",
    "display_name",
    "kind",
    "industry",
    "source",
    "tier",
    "lifecycle_stage",
    "status",
    "owner",
    "team",
    "tags",
    "phone_numbers",
    "email_addresses",
    "website",
    "tax_id",
    "address.region_code",
    "address.administrative_area",
    "address.locality",
    "address.address_line",
    "address.postal_code",
    "custom_fields",
    "create_time",
    "update_time",
]


def _enum(enum_type, value: int, prefix: str) -> str:
    return "" if value == 0 else enum_type.Name(value).removeprefix(prefix).lower()


def customer_row(c: pb.Customer) -> list[str]:
    custom = json_format.MessageToJson(c.custom_fields, indent=None) if c.HasField("custom_fields") else ""
    return [
        c.name,
        c.display_name,
        _enum(pb.CustomerKind, c.kind, "CUSTOMER_KIND_"),
        c.industry,
        c.source,
        _enum(pb.CustomerTier, c.tier, "CUSTOMER_TIER_").upper(),
        _enum(pb.LifecycleStage, c.lifecycle_stage, "LIFECYCLE_STAGE_"),
        _enum(pb.CustomerStatus, c.status, "CUSTOMER_STATUS_"),
        c.owner,
        c.team,
        ";".join(c.tags),
        ";".join(p.number for p in c.phone_numbers),
        ";".join(e.address for e in c.email_addresses),
        c.website,
        c.tax_id,
        c.address.region_code,
        c.address.administrative_area,
        c.address.locality,
        c.address.address_line,
        c.address.postal_code,
        custom,
        c.create_time.ToJsonString() if c.HasField("create_time") else "",
        c.update_time.ToJsonString() if c.HasField("update_time") else "",
    ]


def open_output(path: str):
    return open(path, "w", newline="", encoding="utf-8")


async def run_export(channel, metadata, args) -> int:
    stub = rpc_grpc.CustomerDataServiceStub(channel)
    progress = Progress(None, unit="customers")
    count = 0
    with contextlib.ExitStack() as stack:
        handle = sys.stdout if args.out == "-" else stack.enter_context(open_output(args.out))
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        call = stub.ExportCustomers(
            rpc.ExportCustomersRequest(filter=args.filter, order_by=args.order_by), metadata=metadata
        )
        async for customer in call:
            writer.writerow(customer_row(customer))
            count += 1
            progress.update(count)
    progress.update(count, force=True)
    progress.close()
    print(f"exported {count} customers to {args.out}", file=sys.stderr)
    return 0
