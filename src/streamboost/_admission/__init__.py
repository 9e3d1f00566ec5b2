"""Admission control: a limit of concurrent requests per process (and per route, and across
processes through Redis), a bounded priority queue with a deadline, and 429/503 with
``Retry-After`` past it, all before the app runs.

``AdmissionConfig`` and ``SharedLimit`` are re-exported by ``streamboost``; ``StreamBoost``
builds an ``Admission`` from its ``admission=`` option and hands each HTTP request's run to
its ``Ticket``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ._config import AdmissionConfig, SharedLimit
from ._ticket import QUEUE_PHASE, Admission, Ticket

__all__ = [
    "QUEUE_PHASE",
    "Admission",
    "AdmissionConfig",
    "SharedLimit",
    "Ticket",
    "build_admission",
]


def build_admission(
    admission: AdmissionConfig | None, *, metrics: bool, registry: CollectorRegistry | None
) -> Admission | None:
    """StreamBoost's ``admission=`` option checked and built (None: admission off)."""
    if admission is None:
        return None
    if not isinstance(admission, AdmissionConfig):
        raise TypeError(
            f"admission={admission!r} must be an AdmissionConfig(limit=...) or None (default)"
        )
    return Admission(admission, metrics=metrics, registry=registry)
