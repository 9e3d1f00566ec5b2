"""``MetricBuckets``: the histogram buckets of each latency family, frozen and validated.

``StreamBoost(buckets=MetricBuckets(...))`` hands it to both exporters: Prometheus uses every
field as the family's ``le`` bounds; OpenTelemetry uses ``ttft``, ``tpot`` and
``request_duration`` as bucket advice when they were changed from the defaults (the defaults
advise the semantic conventions' boundaries). Advice never overrides a View or a reader's
preferred aggregation: an SDK set up for exponential histograms gets exponential histograms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final

from ._spec import (
    HTTP_ADVICE,
    REQUEST_DURATION_BUCKETS,
    STREAM_DURATION_BUCKETS,
    TPOT_ADVICE,
    TPOT_BUCKETS,
    TTFT_ADVICE,
    TTFT_BUCKETS,
)

# More bounds than this is almost surely a mistake (a range() of milliseconds): each one is a
# series per route.
MAX_BOUNDS: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricBuckets:
    """Histogram bucket upper bounds, in seconds, per latency family (``+Inf`` is implied).

    Args:
        ttft: ``streamboost_time_to_first_token_seconds`` (and OpenTelemetry's
            ``gen_ai.server.time_to_first_token`` advice, when changed).
        ttfb: ``streamboost_time_to_first_byte_seconds``.
        tpot: ``streamboost_time_per_output_token_seconds`` (and
            ``gen_ai.server.time_per_output_token`` advice, when changed).
        stream_duration: ``streamboost_stream_duration_seconds``.
        request_duration: ``streamboost_http_request_duration_seconds`` (and
            ``http.server.request.duration`` advice, when changed).

    The defaults for TTFT, TTFB, TPOT and stream duration grow by 10 ** (1/16) (~1.155) per
    bucket from 10 ms to 11.5 s, so dashboard percentiles are within ~10% of the truth there;
    the request duration keeps the HTTP semantic conventions' boundaries.
    """

    ttft: Sequence[float] = TTFT_BUCKETS
    ttfb: Sequence[float] = TTFT_BUCKETS
    tpot: Sequence[float] = TPOT_BUCKETS
    stream_duration: Sequence[float] = STREAM_DURATION_BUCKETS
    request_duration: Sequence[float] = REQUEST_DURATION_BUCKETS

    def __post_init__(self) -> None:
        for field in fields(self):
            bounds = _checked(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, bounds)

    def otel_advice(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """Explicit bucket advice for the TTFT, TPOT and request-duration instruments."""
        return (
            TTFT_ADVICE if self.ttft == TTFT_BUCKETS else tuple(self.ttft),
            TPOT_ADVICE if self.tpot == TPOT_BUCKETS else tuple(self.tpot),
            HTTP_ADVICE
            if self.request_duration == REQUEST_DURATION_BUCKETS
            else tuple(self.request_duration),
        )


def _checked(name: str, bounds: object) -> tuple[float, ...]:
    example = f"e.g. {name}=(0.05, 0.1, 0.25, 0.5, 1.0)"
    if isinstance(bounds, str | bytes) or not isinstance(bounds, Sequence):
        raise TypeError(
            f"MetricBuckets({name}={bounds!r}) must be a sequence of seconds (bucket upper "
            f"bounds), {example}"
        )
    out: list[float] = []
    for bound in bounds:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise TypeError(
                f"MetricBuckets({name}=...) holds {bound!r}, not a number of seconds; {example}"
            )
        value = float(bound)
        if math.isinf(value) and value > 0:
            raise ValueError(
                f"MetricBuckets({name}=...) holds +Inf: leave it out, it is always added; {example}"
            )
        if not math.isfinite(value):
            raise ValueError(f"MetricBuckets({name}=...) holds {bound!r}, not finite; {example}")
        if value <= 0:
            raise ValueError(
                f"MetricBuckets({name}=...) holds {bound!r}: bounds are positive seconds; {example}"
            )
        if out and value <= out[-1]:
            raise ValueError(
                f"MetricBuckets({name}={tuple(bounds)!r}) must be strictly increasing "
                f"({bound!r} follows {out[-1]!r}); {example}"
            )
        out.append(value)
    if not out:
        raise ValueError(f"MetricBuckets({name}=()) needs at least one bound; {example}")
    if len(out) > MAX_BOUNDS:
        raise ValueError(
            f"MetricBuckets({name}=...) has {len(out)} bounds, at most {MAX_BOUNDS} (each is a "
            f"series per route); {example}"
        )
    return tuple(out)


DEFAULT_BUCKETS: Final = MetricBuckets()
