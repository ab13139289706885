"""What the reporting servicers share: a unit-of-work runner and request_id idempotency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from crm_reporting.app import ReportingApp
from crm_shared.db.idempotency import idempotent, in_unit_of_work


class ReportingServicerBase:
    def __init__(self, app: ReportingApp) -> None:
        self._app = app

    async def _write(self, run: Callable[[object], Awaitable[object]]):
        return await in_unit_of_work(self._app.uow_factory, run)

    async def _once(self, method: str, request, *, run, response_type):
        """request_id idempotency (AIP-155) storing the whole response (no personal data here)."""
        return await idempotent(
            self._app.uow_factory,
            method=method,
            request_id=request.request_id,
            request=request,
            response_type=response_type,
            run=run,
        )
