"""The export spec: every metric's name, help, type, labels, buckets and unit, once.

The stream families, the cache's and the deferred writers'. The single-process Collector
(``prometheus._plain``), the multiprocess families (``prometheus._families``, file-backed) and
OpenTelemetry (``otel._histograms``, the cache's instruments) all read these records, so the
backends cannot drift apart. Counter names carry no ``_total``: prometheus_client adds it.
The WebSocket families are in ``_spec_websocket``, on these same records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from .._stream import (
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    OUTCOME_STALLED,
)

# Semantic-convention bucket advice (GenAI and HTTP server metrics), as published.
TTFT_ADVICE: Final = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0),
    *(7.5, 10.0),
)
TPOT_ADVICE: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
HTTP_ADVICE: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)


def geometric(low: float, high: float, per_decade: int = 16) -> tuple[float, ...]:
    """``10 ** (k / per_decade)`` from ``low`` to ``high``, to three significant digits."""
    first = math.floor(math.log10(low) * per_decade + 1e-9)
    last = math.ceil(math.log10(high) * per_decade - 1e-9)
    bounds = (float(f"{10 ** (k / per_decade):.3g}") for k in range(first, last + 1))
    return tuple(b for b in bounds if low <= b <= high)


# Prometheus buckets. The stream latencies are geometric with ratio 10 ** (1/16) ~ 1.155 from
# 10 ms to 11.5 s: a histogram_quantile estimate lies in the true quantile's bucket (or the
# next), so p50/p95/p99 stay within ~10% of the truth there (tests/test_percentiles_e2e.py);
# coarse below and above. About 60 buckets per histogram and route.
FINE: Final = geometric(0.01, 11.5)
TTFT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.0075, *FINE, 15.0, 20.0, 30.0, 60.0)
TPOT_BUCKETS: Final = (0.001, 0.0025, *geometric(0.005, 0.0087), *FINE)
STREAM_DURATION_BUCKETS: Final = (0.005, *FINE, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# The request duration (per status too) keeps the HTTP advice, extended to long streams; the
# phases' histogram, whose panel shows means, the GenAI advice extended to a minute.
REQUEST_DURATION_BUCKETS: Final = (*HTTP_ADVICE, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
PHASE_BUCKETS: Final = (*TTFT_ADVICE, 20.0, 30.0, 60.0)

OUTCOMES: Final = (
    *(OUTCOME_COMPLETED, OUTCOME_CLIENT_DISCONNECTED, OUTCOME_ERROR, OUTCOME_NO_TOKEN),
    OUTCOME_STALLED,
)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Family:
    """One Prometheus stream family (``name`` without the counter's ``_total``)."""

    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    unit: str = ""


@dataclass(frozen=True, slots=True)
class OTelHistogram:
    """One OpenTelemetry instrument: name, unit, description, bucket advice (histograms)."""

    name: str
    unit: str
    description: str
    boundaries: tuple[float, ...] = ()


_P: Final = "streamboost_"
_MR: Final = ("method", "route")
_MRS: Final = ("method", "route", "status")

REQUESTS: Final = Family(_P + "http_requests", "HTTP responses.", "counter", _MRS)
DURATION: Final = Family(
    _P + "http_request_duration_seconds",
    "Request to the last body chunk (background tasks excluded).",
    "histogram",
    _MRS,
    REQUEST_DURATION_BUCKETS,
    "seconds",
)
TTFB: Final = Family(
    _P + "time_to_first_byte_seconds",
    "Request to the first body byte.",
    "histogram",
    _MR,
    TTFT_BUCKETS,
    "seconds",
)
TTFT: Final = Family(
    _P + "time_to_first_token_seconds",
    "Request to the first content event of a stream.",
    "histogram",
    _MR,
    TTFT_BUCKETS,
    "seconds",
)
TPOT: Final = Family(
    _P + "time_per_output_token_seconds",
    "(last content event - first) / (content events - 1).",
    "histogram",
    _MR,
    TPOT_BUCKETS,
    "seconds",
)
STREAM_DURATION: Final = Family(
    _P + "stream_duration_seconds",
    "Request to the last body chunk of a stream.",
    "histogram",
    _MR,
    STREAM_DURATION_BUCKETS,
    "seconds",
)
EVENTS: Final = Family(_P + "stream_events", "Events the app streamed.", "counter", _MR)
WRITES: Final = Family(_P + "stream_writes", "Body writes to the server.", "counter", _MR)
BYTES: Final = Family(_P + "response_bytes", "Body bytes sent.", "counter", _MR, unit="bytes")
ACTIVE: Final = Family(_P + "streams_active", "Streams in flight.", "gauge", _MR)
STREAMS: Final = Family(_P + "streams", "Streams by outcome.", "counter", (*_MR, "outcome"))
PHASE: Final = Family(
    _P + "phase_duration_seconds",
    "Work before the first token, by phase.",
    "histogram",
    ("route", "phase"),
    PHASE_BUCKETS,
    "seconds",
)
FALLBACKS: Final = Family(
    _P + "phase_fallbacks",
    "Phases that used their fallback.",
    "counter",
    ("route", "phase", "reason"),
)
# The (method, route) families in the order the single-process Collector yields them: those
# of every response, then those observed for streams only (a route that never streamed has
# none of their series).
ROUTE_HISTOGRAMS: Final = {"ttfb": TTFB}
ROUTE_COUNTERS: Final = {"bytes": BYTES}
STREAM_HISTOGRAMS: Final = {"ttft": TTFT, "tpot": TPOT, "stream_duration": STREAM_DURATION}
STREAM_COUNTERS: Final = {"events": EVENTS, "writes": WRITES}
FAMILIES: Final = (
    REQUESTS,
    DURATION,
    TTFB,
    TTFT,
    TPOT,
    STREAM_DURATION,
    EVENTS,
    WRITES,
    BYTES,
    ACTIVE,
    STREAMS,
    PHASE,
    FALLBACKS,
)

OTEL_TTFT: Final = OTelHistogram(
    "gen_ai.server.time_to_first_token",
    "s",
    "Time to generate the first token, measured at the server.",
    TTFT_ADVICE,
)
OTEL_TPOT: Final = OTelHistogram(
    "gen_ai.server.time_per_output_token",
    "s",
    "Time per output token after the first, measured at the server.",
    TPOT_ADVICE,
)
OTEL_DURATION: Final = OTelHistogram(
    "http.server.request.duration", "s", "Duration of HTTP server requests.", HTTP_ADVICE
)

# Cache: one series per cache name (caches sharing a name add up).
CACHE_LOAD_BUCKETS: Final = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE_RESULTS: Final = ("hit", "miss", "stale", "error")
_LOAD_HELP: Final = "Time the cached function took on a miss or refresh"
CACHE_REQUESTS: Final = Family(
    _P + "cache_requests", "Cache requests by result", "counter", ("cache", "result")
)
CACHE_LOAD: Final = Family(
    _P + "cache_load_duration_seconds",
    _LOAD_HELP,
    "histogram",
    ("cache",),
    CACHE_LOAD_BUCKETS,
    "seconds",
)
CACHE_FAMILIES: Final = (CACHE_REQUESTS, CACHE_LOAD)
# OpenTelemetry: the requests as an observable counter read at collection, the load histogram
# with the SDK's default buckets (no advice).
OTEL_CACHE_REQUESTS: Final = OTelHistogram(
    "streamboost.cache.requests", "{request}", "Cache requests by result"
)
OTEL_CACHE_LOAD: Final = OTelHistogram("streamboost.cache.load.duration", "s", _LOAD_HELP)

# Deferred writes: one series per writer name (writers sharing a name add up).
DEFERRED_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
DEFERRED_TIME_BUCKETS: Final = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEFERRED_QUEUE_DEPTH: Final = Family(
    _P + "deferred_queue_depth",
    "Items accepted but not yet committed (deferred jobs pending or running).",
    "gauge",
    ("writer",),
)
DEFERRED_ITEMS: Final = Family(
    _P + "deferred_items",
    "Deferred items by outcome: written, retried (per retry), dead_lettered, lost.",
    "counter",
    ("writer", "outcome"),
)
DEFERRED_BATCH_SIZE: Final = Family(
    _P + "deferred_batch_size",
    "Items per batch handed to a deferred writer's sink.",
    "histogram",
    ("writer",),
    DEFERRED_SIZE_BUCKETS,
)
DEFERRED_WRITE_DURATION: Final = Family(
    _P + "deferred_write_duration_seconds",
    "Time one sink call took (successful or not).",
    "histogram",
    ("writer",),
    DEFERRED_TIME_BUCKETS,
    "seconds",
)
DEFERRED_LAG: Final = Family(
    _P + "deferred_lag_seconds",
    "Time from put() accepting the oldest item of a batch to the sink committing it.",
    "histogram",
    ("writer",),
    DEFERRED_TIME_BUCKETS,
    "seconds",
)
# Plain ints read at scrape time, and the histograms observed once per committed batch.
DEFERRED_COUNTS: Final = (DEFERRED_QUEUE_DEPTH, DEFERRED_ITEMS)
DEFERRED_BATCH: Final = (DEFERRED_BATCH_SIZE, DEFERRED_WRITE_DURATION, DEFERRED_LAG)

# Admission control (``_admission``), exported when StreamBoost(admission=...) is on, through
# the admission's own PlainCollector. ``route`` is the template of a configured route limit,
# or ``ADMISSION_ANY_ROUTE`` for every other request (bounded by the configuration).
ADMISSION_ANY_ROUTE: Final = "*"
ADMISSION_RESULTS: Final = ("admitted", "rejected", "abandoned")
ADMISSION_REASONS: Final = ("queue_full", "displaced", "timeout", "unavailable")
ADMISSION_QUEUE_DEPTH: Final = Family(
    _P + "admission_queue_depth", "Requests waiting for admission.", "gauge", ("route",)
)
ADMISSION_ACTIVE: Final = Family(
    _P + "admission_active", "Admitted requests running the app.", "gauge", ("route",)
)
ADMISSION_WAIT: Final = Family(
    _P + "admission_wait_seconds",
    "Time from arrival to admission, rejection or the client leaving, by result.",
    "histogram",
    ("route", "result"),
    TTFT_BUCKETS,
    "seconds",
)
ADMISSION_REJECTED: Final = Family(
    _P + "admission_rejected",
    "Requests answered 429/503 before the app ran, by reason.",
    "counter",
    ("route", "reason"),
)
ADMISSION_FAMILIES: Final = (
    ADMISSION_QUEUE_DEPTH,
    ADMISSION_ACTIVE,
    ADMISSION_WAIT,
    ADMISSION_REJECTED,
)
