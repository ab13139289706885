"""EventEnvelope (crm.common.v1): build one for a payload, parse one off the wire, unpack its payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from crm.common.v1 import events_pb2

EventEnvelope = events_pb2.EventEnvelope
Actor = events_pb2.Actor

M = TypeVar("M", bound=Message)


class EnvelopeError(ValueError):
    """Bytes that are not a usable envelope (a poison message: retrying will not help)."""


def event_type(payload_or_type: Message | type[Message]) -> str:
    """The envelope `type` of a payload: its fully-qualified protobuf name."""
    return payload_or_type.DESCRIPTOR.full_name


def build_envelope(
    *,
    event_id: str,
    payload: Message,
    source: str,
    subject: str,
    occurred_at: datetime,
    actor_subject: str,
    actor_team: str = "",
    traceparent: str = "",
    request_id: str = "",
) -> events_pb2.EventEnvelope:
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    envelope = events_pb2.EventEnvelope(
        id=event_id,
        type=event_type(payload),
        source=source,
        subject=subject,
        actor=events_pb2.Actor(subject=actor_subject, team=actor_team),
        traceparent=traceparent,
        request_id=request_id,
    )
    envelope.occurred_at.FromDatetime(occurred_at)
    packed = any_pb2.Any()
    packed.Pack(payload)
    envelope.payload.CopyFrom(packed)
    return envelope


def serialize_envelope(envelope: events_pb2.EventEnvelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)


def parse_envelope(data: bytes) -> events_pb2.EventEnvelope:
    """Decode message data; raises EnvelopeError for anything that is not an envelope with id and type."""
    envelope = events_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise EnvelopeError(f"undecodable event envelope: {exc}") from exc
    if not envelope.id or not envelope.type:
        raise EnvelopeError("event envelope without id or type")
    if envelope.payload.TypeName() != envelope.type:
        raise EnvelopeError(
            f"envelope type {envelope.type!r} does not match payload {envelope.payload.TypeName()!r}"
        )
    return envelope


def unpack_payload(envelope: events_pb2.EventEnvelope, payload_type: type[M]) -> M:
    payload = payload_type()
    if not envelope.payload.Unpack(payload):
        raise EnvelopeError(f"payload is {envelope.payload.TypeName()}, not {event_type(payload_type)}")
    return payload


def occurred_at(envelope: events_pb2.EventEnvelope) -> datetime:
    return envelope.occurred_at.ToDatetime(tzinfo=UTC)
