"""The Prometheus fast backend's end of a response in C (``tally_end``) against the Python
``FastSeries.end`` it replaces (issue 13): the same records through both, on two backends, must
leave every exported number equal, for every kind of response the observer sees.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamboost._export._spec import OUTCOMES
from streamboost._export.prometheus import _fast_backend
from streamboost._export.prometheus._fast_backend import (
    FastBackend,
    FastSeries,
    RouteStats,
    StreamStats,
)
from streamboost._export.prometheus._plain import Hist
from streamboost._stream import NATIVE, StreamRecord
from streamboost._stream._kernel import tally_end, tally_layout

pytestmark = pytest.mark.skipif(not NATIVE, reason="the C kernel is not built")

SCOPE: dict[str, object] = {"type": "http", "method": "GET", "path": "/chat"}


def _record(rng: random.Random) -> tuple[StreamRecord, float]:
    """A random response as the kernel and HTTPStream leave it, and its duration."""
    clock = rng.uniform(0, 1000)
    record = StreamRecord(dict(SCOPE), clock)
    started = rng.random() < 0.9
    streaming = started and rng.random() < 0.8
    if started:
        clock += rng.expovariate(100)
        record.began(rng.choice((200, 404, 500)), streaming, clock)
    for _ in range(rng.choice((0, 1, 2, 5, 40))):
        clock += rng.choice((0.0, rng.expovariate(50), rng.uniform(0, 3)))
        content = rng.choice((0, 1, 1, 3))
        record.produced(content, clock)
        record.sent(rng.randrange(0, 300), rng.randrange(0, 4), content, clock)
    record.outcome = rng.choice(OUTCOMES)
    return record, clock + rng.expovariate(1000) - record.request_at


def _numbers(backend: FastBackend) -> list[Any]:
    """Every exported sample's value; a histogram as its counts, sum and exemplar values."""
    out: list[Any] = []
    for family, key, value in backend.samples():
        if isinstance(value, Hist):
            exemplars = [
                None if e is None else (e.labels, e.value) for e in (value.exemplars or ())
            ]
            out.append((family.name, key, (value.bounds, value.counts, value.sum, exemplars)))
        else:
            out.append((family.name, key, value))
    return out


def test_the_backend_uses_the_c_twin() -> None:
    assert _fast_backend.SERIES_END is tally_end
    assert FastBackend.series_end is tally_end


@pytest.mark.parametrize("seed", range(20))
def test_c_and_python_leave_the_same_numbers(seed: int) -> None:
    rng = random.Random(seed)
    python, c = FastBackend(), FastBackend()
    for _ in range(60):
        route, status = rng.choice(("/a", "/b")), rng.choice(("200", "500"))
        start_first = rng.random() < 0.7  # else the route's first stream ends before a start
        series = [b.new_series("GET", route, status) for b in (python, c)]
        if start_first:
            for s in series:
                s.start()
        record, duration = _record(rng)
        trace_id = rng.choice((None, None, f"{rng.getrandbits(128):032x}"))
        FastSeries.end(series[0], record, duration, trace_id)
        assert tally_end is not None
        tally_end(series[1], record, duration, trace_id)
    assert _numbers(python) == _numbers(c)


def test_integer_times_are_read_as_python_reads_them() -> None:
    python, c = FastBackend(), FastBackend()
    record = StreamRecord(dict(SCOPE), 10)
    record.began(200, True, 11)
    record.produced(1, 12)
    record.sent(5, 1, 1, 12)
    record.produced(1, 15)
    record.sent(5, 1, 1, 15)
    FastSeries.end(python.new_series("GET", "/", "200"), record, 6, None)
    assert tally_end is not None
    tally_end(c.new_series("GET", "/", "200"), record, 6, None)
    assert _numbers(python) == _numbers(c)


def test_refusals_name_what_is_wrong() -> None:
    assert tally_end is not None and tally_layout is not None
    backend = FastBackend()
    series = backend.new_series("GET", "/", "200")
    record = StreamRecord(dict(SCOPE), 0.0)
    record.began(200, True, 1.0)
    with pytest.raises(TypeError, match="laid-out class"):
        tally_end(object(), record, 1.0, None)
    with pytest.raises(TypeError, match="laid-out class"):
        tally_end(series, object(), 1.0, None)
    record.outcome = "not-an-outcome"
    with pytest.raises(KeyError, match="not-an-outcome"):
        tally_end(series, record, 1.0, None)

    class NoSlots:
        requests = 0

    with pytest.raises(TypeError, match="not a __slots__ slot"):
        tally_layout(NoSlots, RouteStats, StreamStats, Hist, StreamRecord)
    with pytest.raises(TypeError, match="no RecordBase"):
        tally_layout(FastSeries, RouteStats, StreamStats, Hist, FastSeries)
    # A failed layout leaves the classes laid out before it usable.
    tally_layout(FastSeries, RouteStats, StreamStats, Hist, StreamRecord)
    record.outcome = OUTCOMES[0]
    tally_end(series, record, 1.0, None)
    assert series.requests == 2  # the refused call above had counted the request already


def test_a_value_on_a_bound_falls_in_that_bound_s_bucket() -> None:
    python, c = FastBackend(), FastBackend()
    bounds = python.new_series("GET", "/", "200").duration.bounds
    for bound in bounds:
        record = StreamRecord(dict(SCOPE), 0.0)
        record.began(200, True, bound)
        record.sent(5, 1, 1, bound)  # first byte and first token exactly a bound after 0
        FastSeries.end(python.new_series("GET", "/", "200"), record, bound, None)
        assert tally_end is not None
        tally_end(c.new_series("GET", "/", "200"), record, bound, None)
    assert _numbers(python) == _numbers(c)
    assert c.new_series("GET", "/", "200").duration.counts[: len(bounds)] == [1] * len(bounds)
