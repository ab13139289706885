"""The CSV CLIs (import with a mapping file, resume by job id; export) against a real service."""

from __future__ import annotations

import csv
import uuid

import pytest
from customer_data_helpers import define_custom_fields, unique

from crm_customer.cli.main import amain

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cli_import_with_mapping_then_resume_then_export(
    customer_service, channel, token_factory, tmp_path, capsys
):
    token = token_factory(subject="root", roles=("admin",), team="east")
    await define_custom_fields(channel, (("authorization", f"Bearer {token}"),), {"founded": "date"})
    tag = unique()
    source = tmp_path / "customers.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Company", "E-mail", "Phone", "Founded", "Ignored"])
        for n in range(1, 8):
            writer.writerow(
                [f"CLI {tag} {n}", f"cli{n}-{tag}@x.example", f"1380013{n:04d}", f"2021/03/0{n}", "x"]
            )
        writer.writerow(["", "broken", "", "", ""])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "mode: upsert\n"
        "columns:\n"
        "  Company: display_name\n"
        "  E-mail: email_addresses\n"
        "  Phone: phone_numbers\n"
        "  Founded: custom_fields.founded:date\n"
    )
    report = tmp_path / "report.csv"
    job_id = str(uuid.uuid4())
    common = ["--target", customer_service.address, "--token", token]
    argv = ["import", *common, "--file", str(source), "--mapping", str(mapping), "--job-id", job_id]
    status = await amain([*argv, "--report", str(report), "--batch-size", "3"])
    err = capsys.readouterr().err
    assert status == 1  # one row rejected
    assert "created 7" in err and "rejected 1" in err and "row 8:" in err
    outcomes = {row["row"]: row for row in csv.DictReader(report.open())}
    assert outcomes["8"]["outcome"] == "rejected" and outcomes["8"]["reason"]
    assert outcomes["1"]["outcome"] == "created" and outcomes["1"]["customer"].startswith("customers/")

    # Running the same file again with the same job id applies nothing twice.
    status = await amain(argv)
    err = capsys.readouterr().err
    assert "created 7" in err and "skipped (already applied) 8" in err

    out = tmp_path / "export.csv"
    status = await amain(
        [
            "export",
            *common,
            "--out",
            str(out),
            "--filter",
            f'display_name >= "CLI {tag}"',
            "--order-by",
            "display_name",
        ]
    )
    assert status == 0
    exported = [r for r in csv.DictReader(out.open()) if r["display_name"].startswith(f"CLI {tag}")]
    assert [r["display_name"] for r in exported] == [f"CLI {tag} {n}" for n in range(1, 8)]
    assert exported[0]["email_addresses"] == f"cli1-{tag}@x.example"
    assert exported[0]["phone_numbers"] == "+8613800130001"
    assert '"founded": "2021-03-01"' in exported[0]["custom_fields"]
    assert "exported" in capsys.readouterr().err
