"""The example's settings and latencies (code: ``streamboost._cli._demo_app._settings``)."""

from streamboost._cli._demo_app._settings import ChatSettings, Latencies, Mode

__all__ = ["ChatSettings", "Latencies", "Mode"]
