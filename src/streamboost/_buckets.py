"""Histogram buckets and label values shared by the Prometheus backends."""

from __future__ import annotations

from typing import Final

from ._timing import (
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
)

# OpenTelemetry GenAI time-to-first-token advice, extended to a minute for slow models.
TTFT_BUCKETS: Final = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0),
    *(7.5, 10.0, 20.0, 30.0, 60.0),
)
# OpenTelemetry GenAI time-per-output-token advice.
TPOT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
# OpenTelemetry HTTP duration advice, extended to the length of long streams.
DURATION_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    *(20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
OUTCOMES: Final = (OUTCOME_COMPLETED, OUTCOME_CLIENT_DISCONNECTED, OUTCOME_ERROR, OUTCOME_NO_TOKEN)
