"""``upstream_client()`` and ``instrument_upstream()``: the app's calls to its model provider.

``upstream_client()`` builds the one pooled ``httpx.AsyncClient`` an app shares across its
requests to a model provider: keepalive limits, HTTP/2 when ``h2`` is installed, the read
timeout split into a first-byte timeout and a timeout between chunks, and the event hooks of
``_upstream_timing`` that record the phases ``model`` and ``model_first_byte`` of the current
StreamBoost request. ``instrument_upstream()`` adds the same hooks to a client the app already
has (``httpx`` or ``httpx2``, the one the openai SDK uses), for ``AsyncOpenAI(http_client=...)``.

httpx is an optional dependency (``streamboost[upstream]``, with ``h2``: ``streamboost[http2]``),
imported only when ``upstream_client()`` is called.
"""

from __future__ import annotations

import importlib.util
import math
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._upstream_timing import UpstreamTiming, is_timing_hook

if TYPE_CHECKING:
    import httpx

__all__ = ["instrument_upstream", "upstream_client"]

C = TypeVar("C")


def _seconds(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        also = " or None (no limit)" if allow_none else ""
        raise ValueError(f"{name}={value!r} must be a number of seconds > 0{also}, e.g. 10.0")


def _count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum}, e.g. 20")


def _phase_name(phase: object) -> None:
    if not isinstance(phase, str) or not phase or phase != phase.strip():
        raise ValueError(f"phase={phase!r} must be a non-empty phase name, e.g. 'model'")


def upstream_client(
    base_url: str = "",
    *,
    connect_timeout: float = 5.0,
    first_byte_timeout: float = 120.0,
    read_timeout: float = 60.0,
    write_timeout: float = 30.0,
    pool_timeout: float = 30.0,
    max_connections: int = 100,
    max_keepalive_connections: int = 20,
    keepalive_expiry: float = 30.0,
    http2: bool | None = None,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    phase: str = "model",
    first_byte: bool = True,
) -> httpx.AsyncClient:
    """A pooled ``httpx.AsyncClient`` for a model provider that times the model's share of TTFT.

    Build it once (at startup) and share it across requests; close it with ``aclose()``.
    Inside a StreamBoost request each call records the phase ``phase`` (sent to the first
    content event of the response) and, with ``first_byte``, ``<phase>_first_byte`` (sent to
    the response headers).
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url={base_url!r} must be a URL string, e.g. 'https://api.x.com/v1'")
    for name, seconds in (
        ("connect_timeout", connect_timeout),
        ("first_byte_timeout", first_byte_timeout),
        ("read_timeout", read_timeout),
        ("write_timeout", write_timeout),
        ("pool_timeout", pool_timeout),
        ("keepalive_expiry", keepalive_expiry),
    ):
        _seconds(name, seconds)
    _count("max_connections", max_connections, minimum=1)
    _count("max_keepalive_connections", max_keepalive_connections, minimum=0)
    if http2 is not None and not isinstance(http2, bool):
        raise TypeError(f"http2={http2!r} must be True, False or None (on when h2 is installed)")
    has_h2 = importlib.util.find_spec("h2") is not None
    if http2 and not has_h2:
        raise ImportError(
            "http2=True needs the h2 package: pip install 'streamboost[http2]' "
            "(or pass http2=None to use HTTP/2 only when it is installed)"
        )
    if not isinstance(verify, ssl.SSLContext | bool):
        raise TypeError(
            f"verify={verify!r} must be True, False or an ssl.SSLContext, "
            "e.g. ssl.create_default_context(cafile='ca.pem')"
        )
    _phase_name(phase)
    if not isinstance(first_byte, bool):
        raise TypeError(f"first_byte={first_byte!r} must be True or False")
    try:
        import httpx
    except ImportError as exc:
        raise ImportError(
            "upstream_client() needs httpx: pip install 'streamboost[upstream]'"
        ) from exc
    timing = UpstreamTiming(
        phase=phase,
        first_byte=first_byte,
        first_byte_timeout=first_byte_timeout,
        read_timeout=read_timeout,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        headers=dict(headers) if headers is not None else None,
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
        ),
        limits=httpx.Limits(
            max_connections=max_connections,
            # Idle connections kept: never more than the pool holds.
            max_keepalive_connections=min(max_keepalive_connections, max_connections),
            keepalive_expiry=keepalive_expiry,
        ),
        http2=has_h2 if http2 is None else http2,
        verify=verify,
        event_hooks={"request": [timing.request], "response": [timing.response]},
    )


def _base_of(client: object, name: str) -> str | None:
    """``httpx`` or ``httpx2`` when ``client`` is (a subclass of) that package's ``name``."""
    for cls in type(client).__mro__:
        package = cls.__module__.partition(".")[0]
        if cls.__name__ == name and package in ("httpx", "httpx2"):
            return package
    return None


def instrument_upstream(
    client: C,
    *,
    phase: str = "model",
    first_byte: bool = True,
    first_byte_timeout: float | None = None,
) -> C:
    """Add StreamBoost's model timing hooks to an ``httpx.AsyncClient`` (or ``httpx2``'s).

    Returns the same client. ``first_byte_timeout`` bounds the wait for the response headers
    in place of the client's read timeout (``None``: the read timeout bounds it, as before).
    """
    target: Any = client  # httpx or httpx2, neither imported here
    if _base_of(client, "AsyncClient") is None:
        package = _base_of(client, "Client")
        if package is not None:
            raise TypeError(
                f"instrument_upstream() times async clients; got {type(client).__qualname__}: "
                f"use {package}.AsyncClient inside an ASGI app"
            )
        raise TypeError(
            f"instrument_upstream() takes an httpx.AsyncClient (or httpx2.AsyncClient, or a "
            f"subclass such as openai.DefaultAsyncHttpxClient); got {client!r}"
        )
    _phase_name(phase)
    if not isinstance(first_byte, bool):
        raise TypeError(f"first_byte={first_byte!r} must be True or False")
    _seconds("first_byte_timeout", first_byte_timeout, allow_none=True)
    hooks = target.event_hooks  # the client's own lists: appending adds to them
    if any(is_timing_hook(hook) for hook in hooks["request"]):
        raise ValueError(
            "this client already records model phases (upstream_client() or an earlier "
            "instrument_upstream()); instrument it once, or phases would be counted twice"
        )
    timing = UpstreamTiming(
        phase=phase,
        first_byte=first_byte,
        first_byte_timeout=first_byte_timeout,
        read_timeout=target.timeout.read,
    )
    hooks["request"].append(timing.request)
    hooks["response"].append(timing.response)
    return client
