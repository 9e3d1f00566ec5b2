"""Every numeric and boolean option checks its type; unit mistakes are warned about.

``window='50ms'`` is a TypeError that suggests ``window=0.05``, ``True`` is not a number, and a
coalescing window of a second or more (``window=50``, meant as milliseconds) warns with the
seconds it probably meant. The first test finds the options by their annotations, so an option
added later without a check fails it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamboost import (
    Cache,
    CoalesceConfig,
    DeferConfig,
    DeferredWriter,
    Entry,
    RetryPolicy,
    StreamBoost,
    cached,
    delta_buffer,
    drain_deferred,
    gather_phases,
)
from streamboost._deferred import LifespanWriters, run_worker


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


def _sink(entries: list[Entry[Any]]) -> None:
    return None


def _durable() -> DeferredWriter[Any]:
    return DeferredWriter(_sink, durable="redis://127.0.0.1:1/0", registry=CollectorRegistry())


# Each public callable with numeric or boolean options, and how to call it with one option set.
CALLS: dict[str, tuple[Callable[..., Any], Callable[[dict[str, Any]], Any]]] = {
    "CoalesceConfig": (CoalesceConfig, lambda kw: CoalesceConfig(**kw)),
    "DeferConfig": (DeferConfig, lambda kw: DeferConfig(**kw)),
    "RetryPolicy": (RetryPolicy, lambda kw: RetryPolicy(**kw)),
    "DeferredWriter": (
        DeferredWriter,
        lambda kw: DeferredWriter(_sink, registry=CollectorRegistry(), **kw),
    ),
    "Cache": (Cache, lambda kw: Cache("memory://", registry=CollectorRegistry(), **kw)),
    "cached": (cached, lambda kw: cached(**kw)),
    "StreamBoost": (
        StreamBoost,
        lambda kw: StreamBoost(_app, **{"registry": CollectorRegistry(), "otel": False, **kw}),
    ),
    "delta_buffer": (delta_buffer, lambda kw: delta_buffer(_sink, **kw)),
    "LifespanWriters": (LifespanWriters, lambda kw: LifespanWriters(_app, **kw)),
    "drain_deferred": (drain_deferred, lambda kw: asyncio.run(drain_deferred(**kw))),
    "run_worker": (run_worker, lambda kw: asyncio.run(run_worker(_durable(), **kw))),
}
# Options whose annotation names int/float/bool but that take something else too.
NOT_SCALAR = {("StreamBoost", "coalesce"), ("StreamBoost", "is_metadata")}


def _options() -> list[tuple[str, str, str]]:
    found = []
    for label, (target, _) in CALLS.items():
        for name, parameter in inspect.signature(target).parameters.items():
            annotation = str(parameter.annotation)
            kind = re.search(r"\b(int|float|bool)\b", annotation)
            if kind is not None and (label, name) not in NOT_SCALAR:
                found.append((label, name, kind.group(1)))
    return found


OPTIONS = _options()


def test_the_option_list_is_complete() -> None:
    # A sample of what the annotations must yield; the next tests go through all of them.
    assert len(OPTIONS) >= 40
    for option in [
        ("CoalesceConfig", "window", "float"),
        ("StreamBoost", "max_series", "int"),
        ("StreamBoost", "metrics_port", "int"),
        ("StreamBoost", "drain_timeout", "float"),
        ("Cache", "timeout", "float"),
        ("cached", "ttl", "float"),
        ("DeferredWriter", "retries", "int"),
        ("RetryPolicy", "jitter", "bool"),
    ]:
        assert option in OPTIONS


@pytest.mark.parametrize(("label", "name", "kind"), OPTIONS)
def test_a_string_is_refused_with_the_value_named(label: str, name: str, kind: str) -> None:
    call = CALLS[label][1]
    with pytest.raises(TypeError, match=re.escape(f"{name}='5'")):
        call({name: "5"})


@pytest.mark.parametrize(("label", "name", "kind"), OPTIONS)
def test_bool_is_not_a_number_and_1_is_not_a_bool(label: str, name: str, kind: str) -> None:
    call = CALLS[label][1]
    if kind == "bool":
        with pytest.raises(TypeError, match=re.escape(f"{name}=1 must be True or False")):
            call({name: 1})
    else:
        with pytest.raises(TypeError, match=re.escape(f"{name}=True")):
            call({name: True})


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: CoalesceConfig(window="50ms"),
            TypeError,
            "window='50ms' must be a number of seconds (int or float), not str: "
            "did you mean window=0.05?",
        ),
        (lambda: CoalesceConfig(window="0.2 s"), TypeError, "did you mean window=0.2?"),
        (
            lambda: CoalesceConfig(window=True),
            TypeError,
            "window=True must be a number of seconds (int or float), not bool: e.g. window=0.05",
        ),
        (lambda: CoalesceConfig(window=float("nan")), ValueError, "window=nan must be a number"),
        (
            lambda: CoalesceConfig(max_events=16.0),
            TypeError,
            "max_events=16.0 must be an int, not float: pass max_events=16",
        ),
        (
            lambda: CoalesceConfig(send_timeout="30"),
            TypeError,
            "send_timeout='30' must be a number of seconds (int or float) or None",
        ),
        (
            lambda: StreamBoost(_app, metrics_port="9100", otel=False),
            TypeError,
            "metrics_port='9100' must be an int or None, not str: pass metrics_port=9100 "
            "(a number, not a string)",
        ),
        (lambda: cached(ttl="60"), TypeError, "ttl='60' must be a number of seconds"),
        (
            lambda: DeferConfig(retry=3),
            TypeError,
            "retry=3 must be a RetryPolicy, e.g. retry=RetryPolicy(retries=3)",
        ),
        (
            lambda: Cache("memory://", xfetch_beta="1", registry=CollectorRegistry()),
            TypeError,
            "xfetch_beta='1' must be a number (int or float), not str: e.g. xfetch_beta=1.0",
        ),
    ],
)
def test_messages_name_the_value_and_the_fix(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        call()
    assert message in str(caught.value)


async def test_gather_phases_checks_its_timeouts_and_closes_the_coroutines() -> None:
    async def search() -> list[str]:
        return []

    branch = search()
    with pytest.raises(TypeError, match=re.escape("timeouts['rag']='1s' must be a number")):
        await gather_phases(rag=branch, timeouts={"rag": "1s"})  # type: ignore[dict-item]
    assert inspect.getcoroutinestate(branch) == inspect.CORO_CLOSED


def test_a_window_of_a_second_or_more_warns_with_the_seconds_it_meant() -> None:
    with pytest.warns(UserWarning) as caught:
        config = CoalesceConfig(window=50)
    assert config.window == 50  # a warning, not a refusal (slow feeds may want long windows)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("window=50 is in seconds: every batch after the first token ")
    assert "Did you mean window=0.05 (50 ms)?" in message
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CoalesceConfig(window=0.999)
        CoalesceConfig(window=0.05)


def test_a_cache_timeout_of_ten_seconds_or_more_warns() -> None:
    with pytest.warns(UserWarning, match=re.escape("Did you mean timeout=0.05 (50 ms)?")) as w:
        Cache("memory://", timeout=50, registry=CollectorRegistry())
    assert w[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cache("memory://", timeout=5.0, registry=CollectorRegistry())
