"""Export: the spec, route labels, the Prometheus and OpenTelemetry backends, their assembly.

``spec`` (``_spec``) declares every family once; ``prometheus/`` and ``otel/`` read it;
``_route`` gives both the same labels; ``_exporters`` turns StreamBoost's options into observers.
"""

from __future__ import annotations

from ._exporters import build_exporters

__all__ = ["build_exporters"]
