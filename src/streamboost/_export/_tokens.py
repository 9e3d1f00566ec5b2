"""The labels of a stream's token usage: route, model and the optional tenant, bounded.

``TokenLabels`` is shared by the Prometheus and OpenTelemetry token exports of one
``StreamBoost``: the tenant callable (``StreamBoost(tenant=...)``) is called once per response
that reported usage, its label kept on the record's ``Usage``; each export has its own
``SeriesCap`` over (route, model[, tenant]) keys, past which every label is ``overflow``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from .._ratelog import RateLimitedLog
from .._stream import StreamRecord
from ._route import OVERFLOW, SeriesCap
from ._spec_tokens import TENANT_ERROR, UNKNOWN

Tenant = Callable[[dict[str, Any]], str | None]
MAX_TENANT: Final = 100  # characters of a tenant kept for its label

_log = RateLimitedLog(logging.getLogger("streamboost"))


def check_tenant(tenant: object) -> Tenant | None:
    if tenant is not None and not callable(tenant):
        raise TypeError(
            f"tenant={tenant!r} must be a function (scope: dict) -> str | None, e.g. "
            "lambda scope: scope['state'].get('tenant'), or None for no tenant label"
        )
    return tenant


def tenant_label(record: StreamRecord, tenant: Tenant) -> str:
    """``tenant(scope)`` as a label, resolved once per response (kept on ``record.usage``)."""
    usage = record.usage
    assert usage is not None
    label = usage.tenant
    if label is None:
        try:
            value = tenant(record.scope)
        except Exception as exc:
            _log.log(logging.WARNING, "tenant", "streamboost tokens: tenant() raised %r", exc)
            label = TENANT_ERROR
        else:
            label = str(value)[:MAX_TENANT] if value else UNKNOWN
        usage.tenant = label
    return label


class TokenLabels:
    """``(route, model)`` or ``(route, model, tenant)`` of a record with usage, capped."""

    __slots__ = ("_cap", "tenant")

    def __init__(self, max_series: int, tenant: Tenant | None) -> None:
        self._cap = SeriesCap(max_series)
        self.tenant = tenant

    def of(self, record: StreamRecord, route: str) -> tuple[str, ...]:
        usage = record.usage
        assert usage is not None
        model = usage.model or UNKNOWN
        tenant = self.tenant
        key = (route, model) if tenant is None else (route, model, tenant_label(record, tenant))
        if not self._cap.admit(key):
            return (OVERFLOW,) * len(key)
        return key
