"""The stream-health options of ``CoalesceConfig`` (``keepalive``, ``stall_timeout``), checked.

Kept out of ``_config`` so that module stays one screen; ``CoalesceConfig.__post_init__``
calls ``check_health`` once.
"""

from __future__ import annotations

from typing import Final, Protocol

from . import _checks

DEFAULT_STALL_EVENT: Final = b'event: error\ndata: {"error": "stalled"}\n\n'
DEFAULT_STALL_EVENT_NDJSON: Final = b'{"error": "stalled"}\n'


class HealthOptions(Protocol):
    """The health options of a ``CoalesceConfig`` (read-only: it is frozen)."""

    @property
    def keepalive(self) -> float | None: ...
    @property
    def keepalive_ndjson(self) -> bytes | None: ...
    @property
    def stall_timeout(self) -> float | None: ...
    @property
    def stall_event(self) -> bytes: ...
    @property
    def stall_event_ndjson(self) -> bytes: ...


def check_health(c: HealthOptions) -> None:
    """Raise ``TypeError``/``ValueError`` naming the value and the fix."""
    _checks.seconds("keepalive", c.keepalive, default=15.0, none=True)
    _checks.seconds("stall_timeout", c.stall_timeout, default=60.0, none=True)
    for name, value in (("keepalive", c.keepalive), ("stall_timeout", c.stall_timeout)):
        if value is not None and not value > 0:
            raise ValueError(f"{name}={value!r} must be > 0 seconds or None (default None)")
    ping = c.keepalive_ndjson
    if ping is not None:
        if not isinstance(ping, bytes) or not ping.endswith(b"\n"):
            raise ValueError(
                f"keepalive_ndjson={ping!r} must be bytes ending in a newline, e.g. b'\\n' "
                "(a blank line, which NDJSON readers skip), or None to send nothing"
            )
        if c.keepalive is None:
            raise ValueError(
                f"keepalive_ndjson={ping!r} has no effect without keepalive: set keepalive "
                "(seconds of silence before a ping, e.g. keepalive=15.0)"
            )
    event = c.stall_event
    if not isinstance(event, bytes) or (event and not event.endswith(b"\n\n")):
        raise ValueError(
            f"stall_event={event!r} must be bytes of whole SSE events ending in a blank line, "
            "e.g. b'event: error\\ndata: {\"error\": \"stalled\"}\\n\\n', or b'' for none"
        )
    line = c.stall_event_ndjson
    if not isinstance(line, bytes) or (line and not line.endswith(b"\n")):
        raise ValueError(
            f"stall_event_ndjson={line!r} must be bytes of whole lines ending in a newline, "
            "e.g. b'{\"error\": \"stalled\"}\\n', or b'' for none"
        )
