"""Prometheus export: the observer and ``/metrics``, the one plain-number collector and its
multiprocess mirror, the two stream backends, multiprocess mode, the endpoint's guard."""
