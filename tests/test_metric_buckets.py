"""``buckets=``: the histogram buckets per family, validated; the fine defaults; the same
buckets as OpenTelemetry advice; exponential histograms where the SDK is configured for them.

Apps run under real uvicorn on loopback and are scraped (or collected) after real requests.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from tests.metrics_apps import starlette_app

from streamboost import MetricBuckets, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

ROUTE = "/stream/{n:int}"
STREAM_FAMILIES = {
    "ttft": "streamboost_time_to_first_token_seconds",
    "ttfb": "streamboost_time_to_first_byte_seconds",
    "tpot": "streamboost_time_per_output_token_seconds",
    "stream_duration": "streamboost_stream_duration_seconds",
    "request_duration": "streamboost_http_request_duration_seconds",
}
SEMCONV_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
SEMCONV_TTFT += (7.5, 10.0)
SEMCONV_TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
SEMCONV_HTTP = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def scraped_bounds(base_url: str) -> dict[str, list[float]]:
    """Each histogram family's finite ``le`` bounds, in order, from a real scrape."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    bounds: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("route") == ROUTE:
                le = float(sample.labels["le"])
                seen = bounds.setdefault(family.name, [])
                if math.isfinite(le) and le not in seen:
                    seen.append(le)
    return bounds


def stream_twice(base_url: str) -> None:
    for _ in range(2):
        response = httpx.get(f"{base_url}/stream/3", timeout=10)
        assert response.status_code == 200 and response.text.count("data:") == 3


def test_default_buckets_are_geometric_fine_enough_for_ten_percent_from_20ms_to_10s() -> None:
    app = StreamBoost(starlette_app(), registry=CollectorRegistry(), otel=False, coalesce=False)
    with uvicorn_in_thread(app) as url:
        stream_twice(url)
        bounds = scraped_bounds(url)
    defaults = MetricBuckets()
    for field in ("ttft", "ttfb", "tpot", "stream_duration"):
        family = STREAM_FAMILIES[field]
        assert bounds[family] == list(getattr(defaults, field)), family
        inside = [b for b in bounds[family] if 0.015 <= b <= 12.0]
        ratios = [high / low for low, high in itertools.pairwise(inside)]
        # A quantile estimate and the true quantile share a bucket: at most one ratio apart.
        assert inside[0] <= 0.02 and inside[-1] >= 10.0, family
        assert max(ratios) <= 1.16, (family, max(ratios))
        assert len(bounds[family]) <= 60, family  # ~60 series per histogram and route
    # The request duration keeps the HTTP semantic conventions' boundaries (extended).
    request = bounds[STREAM_FAMILIES["request_duration"]]
    assert request[: len(SEMCONV_HTTP)] == list(SEMCONV_HTTP)


def test_buckets_per_family_reach_the_scrape() -> None:
    buckets = MetricBuckets(
        ttft=[0.05, 0.1, 0.2],  # any sequence; kept as a tuple
        ttfb=(0.01, 1.0),
        tpot=(0.001, 0.002),
        stream_duration=(1, 2, 4),
        request_duration=(0.5,),
    )
    assert buckets.ttft == (0.05, 0.1, 0.2)
    app = StreamBoost(
        starlette_app(),
        registry=CollectorRegistry(),
        otel=False,
        coalesce=False,
        buckets=buckets,
    )
    with uvicorn_in_thread(app) as url:
        stream_twice(url)
        bounds = scraped_bounds(url)
    for field, family in STREAM_FAMILIES.items():
        assert bounds[family] == [float(b) for b in getattr(buckets, field)], family


def test_buckets_config_is_frozen_typed_and_comparable() -> None:
    default = MetricBuckets()
    assert default == MetricBuckets() and hash(default) == hash(MetricBuckets())
    assert MetricBuckets(tpot=(0.1, 0.2)) != default
    with pytest.raises(AttributeError):
        default.ttft = (1.0,)  # type: ignore[misc]
    assert "MetricBuckets(" in repr(default)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"ttft": (0.2, 0.1)}, ValueError, ["ttft=", "increasing"]),
        ({"tpot": (0.1, 0.1)}, ValueError, ["tpot=", "increasing"]),
        ({"ttft": ()}, ValueError, ["ttft=", "at least one"]),
        ({"ttft": (0.0, 1.0)}, ValueError, ["ttft=", "positive"]),
        ({"ttft": (-1.0, 1.0)}, ValueError, ["ttft=", "positive"]),
        ({"stream_duration": (1.0, math.inf)}, ValueError, ["stream_duration=", "+Inf"]),
        ({"ttft": (0.1, math.nan)}, ValueError, ["ttft=", "finite"]),
        ({"ttft": "0.1,0.2"}, TypeError, ["ttft=", "sequence of seconds"]),
        ({"ttft": 0.5}, TypeError, ["ttft=", "sequence of seconds"]),
        ({"ttfb": (0.1, "0.2")}, TypeError, ["ttfb=", "'0.2'"]),
        ({"request_duration": (True, 2.0)}, TypeError, ["request_duration=", "True"]),
        ({"ttft": tuple(0.001 * i for i in range(1, 300))}, ValueError, ["ttft=", "at most"]),
    ],
)
def test_bad_buckets_are_refused_with_the_value_and_the_fix(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as raised:
        MetricBuckets(**kwargs)
    for word in words:
        assert word in str(raised.value), str(raised.value)
    assert "e.g." in str(raised.value)


def test_streamboost_refuses_buckets_that_are_not_a_metric_buckets() -> None:
    with pytest.raises(TypeError, match=r"buckets=\(0.1, 0.2\).*MetricBuckets\("):
        StreamBoost(starlette_app(), buckets=(0.1, 0.2), otel=False)  # type: ignore[arg-type]


def test_one_registry_with_two_bucket_configs_is_refused() -> None:
    registry = CollectorRegistry()
    StreamBoost(starlette_app(), registry=registry, otel=False)
    StreamBoost(starlette_app(), registry=registry, otel=False)  # the same buckets: shared
    with pytest.raises(ValueError, match="buckets=") as raised:
        StreamBoost(
            starlette_app(), registry=registry, otel=False, buckets=MetricBuckets(tpot=(0.1,))
        )
    assert "registry=" in str(raised.value)


def otel_points(
    buckets: MetricBuckets | None, views: list[View] | None = None, **reader_kwargs: Any
) -> dict[str, list[Any]]:
    """Two streams through real uvicorn into an SDK MeterProvider; each histogram's points."""
    reader = InMemoryMetricReader(**reader_kwargs)
    provider = MeterProvider(metric_readers=[reader], views=views or [])
    app = StreamBoost(
        starlette_app(),
        registry=CollectorRegistry(),
        meter_provider=provider,
        coalesce=False,
        **({} if buckets is None else {"buckets": buckets}),
    )
    with uvicorn_in_thread(app) as url:
        stream_twice(url)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)  # type: ignore[union-attr]
    return found


OTEL_NAMES = (
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.time_per_output_token",
    "http.server.request.duration",
)


def test_otel_advice_is_the_semantic_conventions_unless_buckets_are_given() -> None:
    found = otel_points(None)
    advice = dict(zip(OTEL_NAMES, (SEMCONV_TTFT, SEMCONV_TPOT, SEMCONV_HTTP), strict=True))
    for name, bounds in advice.items():
        (point,) = found[name]
        assert isinstance(point, HistogramDataPoint)
        assert tuple(point.explicit_bounds) == bounds, name
    given = MetricBuckets(ttft=(0.05, 0.1), tpot=(0.01, 0.02), request_duration=(1.0, 2.0))
    found = otel_points(given)
    for name, field in zip(OTEL_NAMES, ("ttft", "tpot", "request_duration"), strict=True):
        (point,) = found[name]
        assert tuple(point.explicit_bounds) == getattr(given, field), name
        assert point.count == 2


@pytest.mark.parametrize("given", [None, MetricBuckets(ttft=(0.05, 0.1))], ids=["default", "set"])
def test_a_view_with_exponential_aggregation_gets_exponential_histograms(
    given: MetricBuckets | None,
) -> None:
    # The user's View wins over StreamBoost's bucket advice, whatever buckets= says.
    view = View(
        instrument_type=HistogramInstrument, aggregation=ExponentialBucketHistogramAggregation()
    )
    found = otel_points(given, views=[view])
    for name in OTEL_NAMES:
        (point,) = found[name]
        assert isinstance(point, ExponentialHistogramDataPoint), (name, type(point))
        assert point.count == 2
        assert point.scale > 0  # fine buckets: base 2 ** (2 ** -scale)
        assert point.sum > 0 and point.min > 0


def test_a_reader_preferring_exponential_histograms_gets_them() -> None:
    # What the OTLP exporter sets up under
    # OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram.
    preferred = {HistogramInstrument: ExponentialBucketHistogramAggregation()}
    found = otel_points(None, preferred_aggregation=preferred)
    for name in OTEL_NAMES:
        (point,) = found[name]
        assert isinstance(point, ExponentialHistogramDataPoint), (name, type(point))
        assert point.count == 2
