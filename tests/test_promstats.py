"""The single-process backend's per-stream update against a plain reference (one observe per
histogram), for any record: ``FastSeries.end`` updates its histograms inline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamboost._export._spec import FAMILIES
from streamboost._export._spec_health import HEALTH_FAMILIES
from streamboost._export.prometheus._client_backend import Families
from streamboost._export.prometheus._fast_backend import FastBackend, FastSeries, Hist, RouteStats
from streamboost._stream import (
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    StreamRecord,
)

_OFFSETS = st.none() | st.floats(min_value=0.0, max_value=900.0)


def reference_end(
    series: FastSeries, record: StreamRecord, duration: float, trace_id: str | None
) -> None:
    r = series.per_route
    start = record.request_at
    series.requests += 1
    series.duration.observe(duration, trace_id)
    if record.first_byte_at is not None:
        r.ttfb.observe(record.first_byte_at - start)
    r.bytes += record.bytes_out
    if record.streaming:
        s = r.streams()
        if record.headers_at is not None:
            s.active -= 1
        s.stream_duration.observe(duration, trace_id)
        s.outcomes[record.outcome] += 1
        s.events += record.events
        s.writes += record.writes
        if record.first_token_at is not None:
            s.ttft.observe(record.first_token_at - start, trace_id)
            tpot = record.time_per_output_token()
            if tpot is not None:
                s.tpot.observe(tpot)


def state(hist: Hist) -> tuple[list[int], float, list[tuple[str, float] | None]]:
    exemplars = [
        None if e is None else (e.labels["trace_id"], e.value) for e in hist.exemplars or ()
    ]
    return list(hist.counts), hist.sum, exemplars


def everything(series: FastSeries) -> list[object]:
    r: RouteStats = series.per_route
    out: list[object] = [state(series.duration), state(r.ttfb), series.requests, r.bytes]
    s = r.stream
    if s is None:  # not made until the first stream
        return out
    hists = [s.ttft, s.tpot, s.stream_duration]
    counters = [s.events, s.writes, s.active, dict(s.outcomes)]
    return [*out, *(state(h) for h in hists), *counters]


@given(
    streams=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=900.0),  # duration
            _OFFSETS,  # first byte
            _OFFSETS,  # first token
            _OFFSETS,  # last token
            st.integers(min_value=0, max_value=5),  # content events
            st.booleans(),  # streaming
            st.booleans(),  # response started
            st.sampled_from(
                [OUTCOME_COMPLETED, OUTCOME_CLIENT_DISCONNECTED, OUTCOME_ERROR, OUTCOME_NO_TOKEN]
            ),
            st.none() | st.sampled_from(["0af7651916cd43dd8448eb211c80319c", "ab" * 16]),
        ),
        max_size=8,
    )
)
def test_inline_end_equals_one_observe_per_histogram(
    streams: list[
        tuple[float, float | None, float | None, float | None, int, bool, bool, str, str | None]
    ],
) -> None:
    fast, reference = (
        FastBackend().new_series("GET", "/r", "200"),
        FastBackend().new_series("GET", "/r", "200"),
    )
    for duration, byte, first, last, tokens, streaming, started, outcome, trace_id in streams:
        record = StreamRecord({"method": "GET"}, 10.0)
        record.first_byte_at = None if byte is None else 10.0 + byte
        record.first_token_at = None if first is None else 10.0 + first
        record.last_token_at = None if last is None else 10.0 + last
        record.content_events = tokens
        record.streaming = streaming
        record.headers_at = 10.0 if started else None
        record.outcome = outcome
        record.events, record.writes, record.bytes_out = tokens + 1, tokens, 7 * tokens
        fast.end(record, duration, trace_id)
        reference_end(reference, record, duration, trace_id)
    assert everything(fast) == everything(reference)


def test_both_backends_export_exactly_the_spec_families() -> None:
    want = {(f.name, f.help, f.kind) for f in (*FAMILIES, *HEALTH_FAMILIES)}
    assert len(want) == 15
    fast = {(m.name, m.documentation, m.type) for m in FastBackend().collect()}
    families = vars(Families(CollectorRegistry())).values()
    client = {(m.name, m.documentation, m.type) for c in families for m in c.collect()}
    assert fast == want
    assert client == want
