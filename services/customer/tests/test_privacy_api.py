"""Privacy requests through real gRPC, on SQLite and PostgreSQL, with real NATS: export, erasure by
crypto-shredding, and key-ring rotation (over the API and with the operator CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_testkit import customer_settings
from sqlalchemy.ext.asyncio import create_async_engine

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm.customer.v1 import privacy_events_pb2
from crm.customer.v1 import privacy_service_pb2 as privacy
from crm.customer.v1 import privacy_service_pb2_grpc as privacy_grpc
from crm_customer.bootstrap import build
from crm_shared.grpc.status import error_details
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import BlindIndex, DecryptionError, KeyRing, generate_key
from crm_shared.runtime import start_service
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def privacy_stub(channel):
    return privacy_grpc.PrivacyServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def person(email: str, phone: str = "+86 139 0000 1111", tax_id: str = "", **extra) -> pb.Customer:
    return pb.Customer(
        display_name="Zhang San",
        kind=pb.CUSTOMER_KIND_PERSON,
        industry="retail",
        tier=pb.CUSTOMER_TIER_B,
        email_addresses=[pb.EmailAddress(address=email)],
        phone_numbers=[pb.PhoneNumber(number=phone)],
        tax_id=tax_id or f"9131{uuid.uuid4().hex[:14].upper()}",
        address=pb.PostalAddress(region_code="CN", address_line="1 Privacy Lane"),
        **extra,
    )


async def raw_dump(url: str) -> str:
    """Everything in the database: the SQLite file and its WAL byte for byte, or every PostgreSQL row."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        files = [Path(path), Path(path + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists()).decode("latin-1")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            rows = []
            for name in names:
                rows += (
                    (await conn.execute(sa.text(f'SELECT row_to_json(t)::text FROM "{name}" t')))
                    .scalars()
                    .all()
                )
    finally:
        await engine.dispose()
    return "\n".join(rows)


async def query(url: str, statement, **params) -> list[sa.Row]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(statement, params)).all()
    finally:
        await engine.dispose()


def codec_of(service) -> PersonalDataCodec:
    settings = service.infrastructure.settings
    return PersonalDataCodec(
        KeyRing.from_spec(settings.pii_keys.get_secret_value()),
        BlindIndex(settings.blind_index_key.get_secret_value()),
    )


async def test_export_returns_everything_held_about_the_customer(
    stub, privacy_stub, as_user, customer_service
):
    admin = as_user("admin", "root")
    email = f"zhang-{uuid.uuid4().hex[:8]}@example.com"
    created = await stub.CreateCustomer(rpc.CreateCustomerRequest(customer=person(email)), metadata=admin)
    await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=created.name,
            contact=pb.Contact(
                display_name="Li Si", email_addresses=[pb.EmailAddress(address="li.si@example.com")]
            ),
        ),
        metadata=admin,
    )

    exported = await privacy_stub.ExportPersonalData(
        privacy.ExportPersonalDataRequest(name=created.name), metadata=admin
    )
    assert exported.customer.email_addresses[0].address == email  # decrypted, unmasked
    assert exported.customer.phone_numbers[0].number == "+8613900001111"
    assert exported.customer.tax_id == created.tax_id and created.tax_id
    assert exported.customer.address.address_line == "1 Privacy Lane"
    assert [c.email_addresses[0].address for c in exported.contacts] == ["li.si@example.com"]
    assert [(e.action, e.resource) for e in exported.audit_events][:1] == [("created", created.name)]
    assert "created" in {
        e.action for e in exported.audit_events if e.resource.startswith(created.name + "/contacts/")
    }
    document = json.loads(exported.json)
    assert document["customer"]["email_addresses"][0]["address"] == email
    assert document["contacts"][0]["display_name"] == "Li Si"
    assert exported.HasField("export_time")
    # Tables other modules add with a customer_id column (tags here) are found without being named.
    tagged = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=person(f"t-{uuid.uuid4().hex[:6]}@example.com", "+86 139 0000 2222", tags=["vip"])
        ),
        metadata=admin,
    )
    with_tags = await privacy_stub.ExportPersonalData(
        privacy.ExportPersonalDataRequest(name=tagged.name), metadata=admin
    )
    related = {r.table: [dict(row) for row in r.rows] for r in with_tags.related_records}
    assert related["customer_tags"] == [{"customer_id": tagged.name.split("/")[1], "tag": "vip"}]

    # The export itself is on the audit trail; nobody but an admin may export.
    url = customer_service.infrastructure.settings.database_url
    actions = await query(
        url,
        sa.text("SELECT action, actor FROM audit_log WHERE resource = :r AND action = 'exported'"),
        r=created.name,
    )
    assert [tuple(a) for a in actions] == [("exported", "root")]
    for role in ("sales_manager", "support_agent", "analyst"):
        await expect_error(
            privacy_stub.ExportPersonalData(
                privacy.ExportPersonalDataRequest(name=created.name), metadata=as_user(role, "x")
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
    await expect_error(
        privacy_stub.ExportPersonalData(
            privacy.ExportPersonalDataRequest(name=f"customers/{uuid.uuid4()}"), metadata=admin
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_erasure_crypto_shreds_and_frees_the_identifiers(
    stub, privacy_stub, as_user, customer_service, nats_server
):
    admin = as_user("admin", "root")
    email = f"erase-me-{uuid.uuid4().hex[:8]}@example.com"
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=person(email, "+86 139 5555 0000", "110101199003074477")),
        metadata=admin,
    )
    customer_id = created.name.split("/")[1]
    contact = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=created.name,
            contact=pb.Contact(
                display_name="Wang Wu",
                notes="likes tea",
                phone_numbers=[pb.PhoneNumber(number="+86 137 0000 9999")],
            ),
        ),
        metadata=admin,
    )
    url = customer_service.infrastructure.settings.database_url
    codec = codec_of(customer_service)
    # What a backup taken before erasure would hold: the sealed phones of the customer.
    (sealed_phones,) = (
        await query(url, sa.text("SELECT phones_enc FROM customers WHERE id = :i"), i=customer_id)
    )[0]
    digests = [
        codec.digest("email", email),
        codec.digest("phone", "+8613955550000"),
        codec.digest("tax_id", "110101199003074477"),
    ]
    before = await raw_dump(url)
    assert all(d in before for d in digests)  # the blind indexes are there before erasure

    request = privacy.ErasePersonalDataRequest(name=created.name, request_id=str(uuid.uuid4()))
    erased = await privacy_stub.ErasePersonalData(request, metadata=admin)
    assert erased.status == pb.CUSTOMER_STATUS_ERASED
    assert (list(erased.email_addresses), list(erased.phone_numbers), erased.tax_id) == ([], [], "")
    assert not erased.HasField("address")
    assert (
        erased.display_name == "[erased]"
        and erased.industry == "retail"
        and erased.tier == pb.CUSTOMER_TIER_B
    )
    assert await privacy_stub.ErasePersonalData(request, metadata=admin) == erased  # retry-safe

    fetched = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin)
    assert (
        fetched.status == pb.CUSTOMER_STATUS_ERASED
        and not fetched.email_addresses
        and not fetched.phone_numbers
    )
    shown = await stub.GetContact(rpc.GetContactRequest(name=contact.name), metadata=admin)
    assert (shown.display_name, shown.notes, list(shown.phone_numbers)) == ("[erased]", "", [])

    # The raw database holds no trace: no plaintext, no blind index, no data key.
    after = await raw_dump(url)
    assert customer_id in after
    for needle in [
        email,
        "13955550000",
        "110101199003074477",
        "Privacy Lane",
        "likes tea",
        *digests,
    ]:
        assert needle not in after, f"{needle!r} survived erasure"
    # Names are personal too: gone from the customer and contact rows. (The ContactCreated /
    # CustomerCreated snapshots already published still carry them; see the report.)
    names = await query(
        url,
        sa.text(
            "SELECT c.display_name, k.display_name FROM customers c JOIN contacts k ON k.customer_id = c.id"
            " WHERE c.id = :i"
        ),
        i=customer_id,
    )
    assert [tuple(n) for n in names] == [("[erased]", "[erased]")]
    assert (
        await query(url, sa.text("SELECT * FROM customer_keys WHERE customer_id = :i"), i=customer_id) == []
    )
    for column in ("phones_enc", "emails_enc", "tax_id_enc", "address_enc"):
        assert (await query(url, sa.text(f"SELECT {column} FROM customers WHERE id = :i"), i=customer_id))[0][
            0
        ] is None
    # Even holding the key ring, the old ciphertext cannot be opened: the data key is gone.
    assert (
        codec.cipher(None, customer_id).open(
            sealed_phones, table="customers", column="phones", row_id=customer_id
        )
        is None
    )
    with pytest.raises(DecryptionError):
        codec.key_ring.decrypt(bytes(sealed_phones), b"customers.phones." + customer_id.encode())

    # CustomerErased is on the stream, without personal data.
    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(
            nc.jetstream(), "CRM_CUSTOMER", subject="crm.customer.customer.erased", resource=created.name
        )
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == ["crm.customer.v1.CustomerErased"]
    event = privacy_events_pb2.CustomerErased()
    envelopes[0].payload.Unpack(event)
    assert event.customer == created.name
    assert email.encode() not in envelopes[0].SerializeToString()

    # The same person may come back as a new customer; the erased one cannot be refilled.
    again = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=person(email, "+86 139 5555 0000")), metadata=admin
    )
    assert again.name != created.name
    refused = await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=created.name, email_addresses=[pb.EmailAddress(address=email)]),
                update_mask={"paths": ["email_addresses"]},
            ),
            metadata=admin,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "CUSTOMER_ERASED"
    audit = await query(
        url, sa.text("SELECT fields FROM audit_log WHERE resource = :r AND action = 'erased'"), r=created.name
    )
    assert len(audit) == 1
    await expect_error(
        privacy_stub.ErasePersonalData(
            privacy.ErasePersonalDataRequest(name=again.name), metadata=as_user("sales_manager", "m")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """python -m crm_customer.admin rotate-keys, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_customer.admin",
        "rotate-keys",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def _wrapped_key_ids(url: str) -> set[str]:
    rows = await query(url, sa.text("SELECT wrapped_key FROM customer_keys"))
    ring = KeyRing.from_spec(f"any:{generate_key()}")
    return {ring.key_id_of(bytes(row[0])) for row in rows}


class KeyRingStages:
    """The same database served with different key rings, as an operator rotates keys."""

    def __init__(self, database_url, nats_server, jwt_keys, as_user) -> None:
        self.url, self.nats_url, self.jwt_keys = database_url, nats_server.url, jwt_keys
        self.blind = generate_key()
        self.admin = as_user("admin", "root")
        self.made: list[pb.Customer] = []

    async def start(self, ring: str):
        settings = customer_settings(
            self.url, self.nats_url, self.jwt_keys, pii_keys=ring, blind_index_key=self.blind
        )
        return await start_service(settings, build)

    async def seed(self, ring: str, count: int = 5) -> None:
        running = await self.start(ring)
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                stub = rpc_grpc.CustomerServiceStub(channel)
                for i in range(count):
                    customer = person(f"rot-{i}-{uuid.uuid4().hex[:6]}@example.com", f"+86 139 1000 000{i}")
                    self.made.append(
                        await stub.CreateCustomer(
                            rpc.CreateCustomerRequest(customer=customer), metadata=self.admin
                        )
                    )
                contact = pb.Contact(
                    display_name="C", email_addresses=[pb.EmailAddress(address="c@example.com")]
                )
                await stub.CreateContact(
                    rpc.CreateContactRequest(parent=self.made[0].name, contact=contact), metadata=self.admin
                )
        finally:
            await running.stop(1)

    async def everything_reads(self, ring: str) -> None:
        running = await self.start(ring)
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                stub = rpc_grpc.CustomerServiceStub(channel)
                for original in self.made:
                    seen = await stub.GetCustomer(
                        rpc.GetCustomerRequest(name=original.name), metadata=self.admin
                    )
                    assert seen.email_addresses == original.email_addresses
                    assert seen.tax_id == original.tax_id and seen.address == original.address
                contacts = await stub.ListContacts(
                    rpc.ListContactsRequest(parent=self.made[0].name), metadata=self.admin
                )
                assert contacts.contacts[0].email_addresses[0].address == "c@example.com"
        finally:
            await running.stop(1)


async def test_key_rotation_over_the_api(database_url, nats_server, jwt_keys, as_user):
    k1, k2 = generate_key(), generate_key()
    stages = KeyRingStages(database_url, nats_server, jwt_keys, as_user)
    admin = stages.admin
    await stages.seed(f"k1:{k1}")
    assert await _wrapped_key_ids(database_url) == {"k1"}

    running = await stages.start(f"k2:{k2},k1:{k1}")
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            rotation = privacy_grpc.PrivacyServiceStub(channel)
            first = await rotation.RotatePersonalDataKeys(
                privacy.RotatePersonalDataKeysRequest(batch_size=2, max_batches=1), metadata=admin
            )
            assert (first.active_key_id, first.rewrapped, first.total, first.remaining) == ("k2", 2, 5, 3)
            assert first.resume_token
            assert await _wrapped_key_ids(database_url) == {"k1", "k2"}  # part way: both still readable
            rest = await rotation.RotatePersonalDataKeys(
                privacy.RotatePersonalDataKeysRequest(batch_size=2, resume_token=first.resume_token),
                metadata=admin,
            )
            assert (rest.rewrapped, rest.already_current, rest.remaining, rest.resume_token) == (3, 0, 0, "")
            again = await rotation.RotatePersonalDataKeys(
                privacy.RotatePersonalDataKeysRequest(), metadata=admin
            )
            assert (again.rewrapped, again.already_current) == (0, 5)
            await expect_error(
                rotation.RotatePersonalDataKeys(
                    privacy.RotatePersonalDataKeysRequest(), metadata=as_user("sales_manager")
                ),
                grpc.StatusCode.PERMISSION_DENIED,
            )
    finally:
        await running.stop(1)
    assert await _wrapped_key_ids(database_url) == {"k2"}
    await stages.everything_reads(f"k2:{k2}")  # k1 dropped from the ring


async def test_key_rotation_with_the_operator_cli(database_url, nats_server, jwt_keys, as_user):
    k1, k2 = generate_key(), generate_key()
    stages = KeyRingStages(database_url, nats_server, jwt_keys, as_user)
    await stages.seed(f"k1:{k1}")
    # Against the database directly, with the service's own settings.
    env = {
        **os.environ,
        "CRM_CUSTOMER_DATABASE_URL": database_url,
        "CRM_CUSTOMER_PII_KEYS": f"k2:{k2},k1:{k1}",
        "CRM_CUSTOMER_BLIND_INDEX_KEY": stages.blind,
    }
    returncode, out, err = await run_cli(env, "--batch-size", "2", "--max-batches", "1")
    assert returncode == 0, err
    assert [json.loads(line)["rewrapped"] for line in out.splitlines()] == [2]
    resume_after = json.loads(out.splitlines()[-1])["resume_after"]
    assert "resume with --resume-after" in err
    returncode, out, err = await run_cli(env, "--batch-size", "2", "--resume-after", resume_after)
    assert returncode == 0, err
    progress = [json.loads(line) for line in out.splitlines()]
    assert [p["rewrapped"] for p in progress] == [2, 3] and progress[-1]["finished"]
    assert await _wrapped_key_ids(database_url) == {"k2"}
    await stages.everything_reads(f"k2:{k2}")

    # A key missing from the ring stops the rotation with a clear answer and changes nothing.
    env["CRM_CUSTOMER_PII_KEYS"] = f"k3:{generate_key()}"
    returncode, _, err = await run_cli(env)
    assert returncode == 1 and "'k2'" in err and "not in the key ring" in err
    assert await _wrapped_key_ids(database_url) == {"k2"}
