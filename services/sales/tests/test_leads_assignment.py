"""Round-robin lead assignment: the rotation position lives in the database, so it continues
where it stopped after the service restarts (same database, new process state)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from lead_stack import sales_settings

from crm.sales.v1 import common_pb2
from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm_sales.bootstrap import build
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _error(call):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return error_details(caught.value)


async def _capture(stub, metadata, n: int) -> str:
    reply = await stub.CaptureLead(
        pb.CaptureLeadRequest(
            display_name=f"Visitor {n}", email_address=f"v{n}-{uuid.uuid4().hex[:6]}@example.com"
        ),
        metadata=metadata,
    )
    return reply.lead


async def test_round_robin_continues_after_a_restart(database_url, nats_server, jwt_keys, as_user):
    settings = sales_settings(database_url, nats_server.url, jwt_keys)
    admin = as_user("admin", "alice", "east")
    manager = as_user("sales_manager", "mia", "east")
    capture = as_user("lead_capture", "web-form", "")

    running = await start_service(settings, build)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = rpc_grpc.LeadServiceStub(channel)
            rule = await stub.CreateLeadAssignmentRule(
                pb.CreateLeadAssignmentRuleRequest(
                    rule=pb.LeadAssignmentRule(
                        team="east",
                        members=["ann", "ben", "cid"],
                        source_channels=[common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM],
                    )
                ),
                metadata=manager,
            )
            first = [await _capture(stub, capture, n) for n in range(2)]
    finally:
        await running.stop(1)

    running = await start_service(settings, build)  # same database and keys, fresh process state
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = rpc_grpc.LeadServiceStub(channel)
            second = [await _capture(stub, capture, n) for n in range(2, 4)]
            owners = [
                (await stub.GetLead(pb.GetLeadRequest(name=name), metadata=admin)).owner
                for name in first + second
            ]
            assert owners == ["ann", "ben", "cid", "ann"]
            stored = await stub.GetLeadAssignmentRule(
                pb.GetLeadAssignmentRuleRequest(name=rule.name), metadata=admin
            )
            assert stored.next_member == "ben"

            # Leads created unassigned (other channel) are dealt out by AssignLeads, continuing the rotation.
            unassigned = [
                (
                    await stub.CreateLead(
                        pb.CreateLeadRequest(
                            lead=pb.Lead(
                                display_name=f"Import {n}",
                                source_channel=common_pb2.LEAD_SOURCE_CHANNEL_IMPORT,
                            )
                        ),
                        metadata=admin,
                    )
                ).name
                for n in range(3)
            ]
            assigned = await stub.AssignLeads(
                pb.AssignLeadsRequest(rule=rule.name, leads=unassigned), metadata=manager
            )
            assert [lead.owner for lead in assigned.leads] == ["ben", "cid", "ann"]
            assert all(
                lead.status == pb.LEAD_STATUS_ASSIGNED and lead.team == "east" for lead in assigned.leads
            )

            # Changing the members keeps the rotation on the same next member (ben), wherever he moved.
            current = await stub.GetLeadAssignmentRule(
                pb.GetLeadAssignmentRuleRequest(name=rule.name), metadata=admin
            )
            assert current.next_member == "ben"
            changed = await stub.UpdateLeadAssignmentRule(
                pb.UpdateLeadAssignmentRuleRequest(
                    rule=pb.LeadAssignmentRule(
                        name=rule.name, members=["dan", "ann", "ben"], etag=current.etag
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["members"]),
                ),
                metadata=manager,
            )
            assert (list(changed.members), changed.next_member) == (["dan", "ann", "ben"], "ben")
            stale = await _error(
                stub.UpdateLeadAssignmentRule(
                    pb.UpdateLeadAssignmentRuleRequest(
                        rule=pb.LeadAssignmentRule(name=rule.name, members=["x"], etag=current.etag),
                        update_mask=field_mask_pb2.FieldMask(paths=["members"]),
                    ),
                    metadata=manager,
                )
            )
            assert stale.code == grpc.StatusCode.ABORTED
            owners = [
                (
                    await stub.GetLead(
                        pb.GetLeadRequest(name=await _capture(stub, capture, n)), metadata=admin
                    )
                ).owner
                for n in range(4, 6)
            ]
            assert owners == ["ben", "dan"]

            # A rep may neither make rules nor deal leads out; another team's manager cannot see the rule.
            rep = as_user("sales_rep", "bob", "east")
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await stub.AssignLeads(pb.AssignLeadsRequest(rule=rule.name), metadata=rep)
            assert error_details(denied.value).code == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await stub.GetLeadAssignmentRule(
                    pb.GetLeadAssignmentRuleRequest(name=rule.name),
                    metadata=as_user("sales_manager", "wes", "west"),
                )
            assert error_details(hidden.value).code == grpc.StatusCode.NOT_FOUND
    finally:
        await running.stop(1)
