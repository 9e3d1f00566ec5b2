"""The stream-health part of the export spec: inter-token gaps and the largest gap per stream.

Both are observed once per stream at its end, from the record's gap counters
(``RecordBase.produced``): the gap histogram's bucket counts are added from the stream's
per-bucket counts and its sum from the stream's total, so a stream of n content events adds
n - 1 gaps without n - 1 observations. The bounds are the kernel's (``_table.GAP_BOUNDS``),
fixed: C counts into them. Gaps are between content events as the app sent them, not between
writes, so coalescing never hides a stall (nor shows its own window as one).
"""

from __future__ import annotations

from typing import Final

from .._stream._table import GAP_BOUNDS
from ._spec import Family, OTelHistogram

MAX_GAP_BUCKETS: Final = (*GAP_BOUNDS, 120.0, 300.0)

GAPS: Final = Family(
    "streamboost_inter_token_gap_seconds",
    "Gaps between consecutive content events the app sent, per stream at its end.",
    "histogram",
    ("method", "route"),
    GAP_BOUNDS,
    "seconds",
)
MAX_GAP: Final = Family(
    "streamboost_stream_max_gap_seconds",
    "The largest gap between two content events of a stream (streams with two or more).",
    "histogram",
    ("method", "route"),
    MAX_GAP_BUCKETS,
    "seconds",
)
# StreamStats attribute -> family, in the single-process Collector's order.
HEALTH_HISTOGRAMS: Final = {"gaps": GAPS, "max_gap": MAX_GAP}
HEALTH_FAMILIES: Final = (GAPS, MAX_GAP)

OTEL_MAX_GAP: Final = OTelHistogram(
    "streamboost.stream.max_gap",
    "s",
    "The largest gap between two content events of a stream.",
    MAX_GAP_BUCKETS,
)
