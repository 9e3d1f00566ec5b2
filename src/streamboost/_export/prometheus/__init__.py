"""Prometheus export: the observer and ``/metrics``, two backends, multiprocess mode, the guard."""
