"""What every servicer shares: a unit-of-work runner and request_id idempotency (AIP-155).

Each service subclasses ServicerBase once (api/_base.py) only to type `_app` as its own app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from crm_shared.db.idempotency import idempotent, in_unit_of_work


class ServicerBase:
    def __init__(self, app: Any) -> None:
        self._app = app  # the service's app: needs `uow_factory`

    async def _write(self, run: Callable[[object], Awaitable[object]]):
        return await in_unit_of_work(self._app.uow_factory, run)

    async def _once(self, method: str, request, *, run, response_type):
        """request_id idempotency storing the whole response (responses here carry no personal data)."""
        return await idempotent(
            self._app.uow_factory,
            method=method,
            request_id=request.request_id,
            request=request,
            response_type=response_type,
            run=run,
        )
