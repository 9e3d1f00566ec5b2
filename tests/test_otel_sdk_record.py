"""``_sdk_record.recorder``: the SDK histogram's record without the attribute copy exports what
the public ``record()`` exports, and every other instrument or value takes ``record()``."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOnExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider

from streamboost._export.otel._sdk_record import recorder

HTTP = {"http.request.method": "GET", "http.route": "/a/{x}", "http.response.status_code": 200}
TOKEN = {"http.request.method": "POST", "http.route": "/b"}
# Values a stream could report, and those the SDK refuses (with a warning): the same for both.
VALUES = [0.0, 0.004, 0.3, 0.3, 1.7, 12.0, 1e-9, 250.0, -1.0, math.nan, math.inf]


def _exported(reader: InMemoryMetricReader) -> list[tuple[Any, ...]]:
    """Every histogram point's attributes, count, sum, min, max, buckets and exemplars."""
    data = reader.get_metrics_data()
    assert data is not None
    points = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for p in metric.data.data_points:  # type: ignore[union-attr]
                    exemplars = [(e.value, e.trace_id, e.filtered_attributes) for e in p.exemplars]
                    points.append(
                        (
                            metric.name,
                            sorted(p.attributes.items()),
                            p.count,  # type: ignore[union-attr]
                            p.sum,  # type: ignore[union-attr]
                            p.min,  # type: ignore[union-attr]
                            p.max,  # type: ignore[union-attr]
                            tuple(p.bucket_counts),  # type: ignore[union-attr]
                            sorted(exemplars, key=repr),
                        )
                    )
    return sorted(points, key=repr)


def _run(fast: bool, contexts: list[Context], **provider: Any) -> list[tuple[Any, ...]]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], **provider).get_meter("t")
    one = meter.create_histogram("one", unit="s", explicit_bucket_boundaries_advisory=(0.1, 1.0))
    two = meter.create_histogram("two", unit="s")
    for histogram, attrs in ((one, HTTP), (two, TOKEN)):
        record = recorder(histogram) if fast else histogram.record
        for value in VALUES:
            for context in contexts:
                record(value, attrs, context)
    return _exported(reader)


def _sampled_context() -> Context:
    tracer = TracerProvider().get_tracer("t")
    span = tracer.start_span("s")
    return trace.set_span_in_context(span)


def test_fast_record_exports_what_record_exports() -> None:
    contexts = [get_current(), _sampled_context()]
    plain = _run(False, contexts)
    assert plain and all(point[2] == 16 for point in plain)  # 8 valid values x 2 contexts
    assert _run(True, contexts) == plain


def test_fast_record_keeps_exemplars_views_and_cardinality_limits() -> None:
    contexts = [get_current(), _sampled_context()]
    options: list[dict[str, Any]] = [
        {"exemplar_filter": AlwaysOnExemplarFilter()},
        {"views": [View(instrument_name="one", attribute_keys={"http.route"})]},
        {"views": [View(instrument_name="*", aggregation_cardinality_limit=1)]},
    ]
    for provider in options:
        plain = _run(False, contexts, **provider)
        assert plain
        assert _run(True, contexts, **provider) == plain, provider
    exemplars = _run(True, contexts, exemplar_filter=AlwaysOnExemplarFilter())
    assert any(point[7] for point in exemplars)


def test_other_instruments_get_their_public_record() -> None:
    proxy = metrics.NoOpMeterProvider().get_meter("t").create_histogram("h")
    assert recorder(proxy) == proxy.record
    sdk = MeterProvider().get_meter("t").create_histogram("h")
    assert recorder(sdk) != sdk.record


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_refused_values_are_refused_with_the_sdk_warning(
    value: float, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    histogram = MeterProvider(metric_readers=[reader]).get_meter("t").create_histogram("h")
    recorder(histogram)(value, dict(TOKEN), get_current())
    assert "Histogram h" in caplog.text
    data = reader.get_metrics_data()
    assert data is None or not data.resource_metrics
