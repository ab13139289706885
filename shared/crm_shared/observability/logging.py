"""Structured logs: one JSON object per line with trace, request and principal context.

Context comes from the contextvars the gRPC interceptors set, so a log line
written anywhere inside an RPC carries its trace id, request id and caller
without anyone passing them along. Tokens never reach a log line: the principal
is logged by subject only, and bearer tokens in messages are redacted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from crm_shared.principal import current_request_id, optional_principal

_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_SECRET_KEYS = frozenset({"authorization", "token", "password", "secret"})
# Attributes every LogRecord has; anything else came from `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _redact(text: str) -> str:
    return _BEARER.sub("Bearer [redacted]", text) if "earer" in text else text


def _context_fields() -> dict[str, str]:
    span_context = trace.get_current_span().get_span_context()
    principal = optional_principal()
    return {
        "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else "",
        "span_id": format(span_context.span_id, "016x") if span_context.is_valid else "",
        "request_id": current_request_id(),
        "principal": principal.subject if principal else "",
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact(record.getMessage()),
            "service": self.service,
            **_context_fields(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = "[redacted]" if name.lower() in _SECRET_KEYS else value
        if record.exc_info:
            entry["exception"] = _redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a developer's terminal: same context, readable."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        fields = _context_fields()
        context = " ".join(f"{name}={value}" for name, value in fields.items() if value)
        line = _redact(super().format(record))
        return f"{line} [{self.service}{' ' + context if context else ''}]"


class _CrmHandler(logging.StreamHandler):
    """Marks the handler we installed so a second configure_logging replaces only ours."""


def configure_logging(
    service: str, level: str | int = "INFO", *, json: bool = True, stream: TextIO | None = None
) -> logging.Handler:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _CrmHandler):
            root.removeHandler(handler)
    handler = _CrmHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service) if json else TextFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
