"""``gen_ai.client.token.usage``: a stream's reported input and output tokens, at its end.

The GenAI semantic conventions' histogram (unit ``{token}``, their bucket advice), with
``gen_ai.token.type`` ``input``/``output``, ``gen_ai.operation.name``, ``gen_ai.response.model``,
``http.route`` and, with ``StreamBoost(tenant=...)``, ``streamboost.tenant``. Recorded inline:
two records per stream that reported usage, streams without usage cost nothing.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

from ..._stream import StreamRecord
from .._spec_tokens import OTEL_TOKEN_TYPES, OTEL_TOKENS
from .._tokens import Tenant, TokenLabels

_OPERATION: Final = "chat"

Attributes = dict[str, str]


class OTelTokens:
    """The token histogram of one meter; attribute dicts built once per admitted key."""

    __slots__ = ("_attrs", "_histogram", "_labels")

    def __init__(self, meter: metrics.Meter, max_series: int, tenant: Tenant | None) -> None:
        self._histogram = meter.create_histogram(
            OTEL_TOKENS.name,
            unit=OTEL_TOKENS.unit,
            description=OTEL_TOKENS.description,
            explicit_bucket_boundaries_advisory=OTEL_TOKENS.boundaries,
        )
        self._labels = TokenLabels(max_series, tenant)
        self._attrs: dict[tuple[str, ...], Attributes] = {}

    def observe(self, record: StreamRecord, route: str) -> None:
        usage = record.usage
        assert usage is not None
        key = self._labels.of(record, route)
        record_ = self._histogram.record
        for kind, tokens in usage.counts():
            token_type = OTEL_TOKEN_TYPES.get(kind)
            if token_type is None:
                continue
            attrs = self._attrs.get((*key, token_type))
            if attrs is None:
                attrs = self._attributes(key, token_type)
            record_(tokens, attrs)

    def _attributes(self, key: tuple[str, ...], token_type: str) -> Attributes:
        route, model, *tenant = key
        attrs: Attributes = {
            "gen_ai.operation.name": _OPERATION,
            "gen_ai.token.type": token_type,
            "gen_ai.response.model": model,
            "http.route": route,
        }
        if tenant:
            attrs["streamboost.tenant"] = tenant[0]
        self._attrs[(*key, token_type)] = attrs  # bounded by the labels' cap
        return attrs
