"""The C classify memo's shape of holes: OpenAI Responses and Gemini chunks.

A Responses API delta counts its ``sequence_number`` up and pads itself with an
``"obfuscation"`` string; a Gemini chunk carries its text before the role, model version and
response id, and token counts that grow. After a memo of two strings (or of holes) misses a
content chunk whose two strings are plain, the memo learns every value of the chunk that may
be a hole (plain strings, numbers after ``"key":``) and answers a chunk with the same bytes
around them and plain holes (docs/architecture.md, "The classify memo"). The Python twin has
no memo, so every answer is the C scanner's against the Python one's, as in
test_kernel_memo.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_kernel_memo import _STRINGS, _alike, _pair
from tests.test_kernel_walk import needs_native

from streamboost._stream import _table
from streamboost._stream._presets import PRESETS

SSE, LINES = _table.FORMAT_SSE, _table.FORMAT_LINES
CONTENT, OTHER, GENERAL = _table.CONTENT, _table.OTHER, _table.GENERAL

S, N = "S", "N"  # a string hole, a number hole
# The shapes as fixed parts and holes, in order.
_RESPONSES: tuple[bytes | str, ...] = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":',
    N,
    b',"item_id":"',
    S,
    b'","output_index":',
    N,
    b',"content_index":',
    N,
    b',"delta":"',
    S,
    b'","logprobs":[],"obfuscation":"',
    S,
    b'"}\n\n',
)
_GEMINI: tuple[bytes | str, ...] = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "',
    S,
    b'"}],"role": "',
    S,
    b'"},"index": ',
    N,
    b'}],"usageMetadata": {"promptTokenCount": ',
    N,
    b',"candidatesTokenCount": ',
    N,
    b',"totalTokenCount": ',
    N,
    b'},"modelVersion": "',
    S,
    b'","responseId": "',
    S,
    b'"}\r\n\r\n',
)
_SHAPES = {"responses": _RESPONSES, "gemini": _GEMINI}
# Fixed parts a stream may switch to, by (shape, part index): a critical event or type, usage
# (a number after "usage" is not null), a finish reason, a CR or LF, another event, [DONE],
# a space before a number, a key of other bytes, a value made a key.
_SWITCHES: dict[tuple[str, int], tuple[bytes, ...]] = {
    ("responses", 0): (
        b'event: error\ndata: {"type":"response.output_text.delta","sequence_number":',
        b'event: response.output_text.delta\ndata: {"type":"error","sequence_number":',
        b'data: {"type":"response.output_text.delta","usage":',
        b'data: {"type":"response.output_text.delta","finish_reason":',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number": ',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence number":',
        b'event: response.output_text.delta\ndata: {"type":',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number":\n',
    ),
    ("responses", 2): (b',"item_id":"', b',"usage":"', b'}\n\ndata: {"item_id":"', b',"type":"'),
    ("responses", 4): (b'","output_index":', b'","usage":', b'"\r\n,"output_index":'),
    ("responses", 10): (
        b'","logprobs":[],"obfuscation":"',
        b'","usage":{"total_tokens":3},"obfuscation":"',
        b'","logprobs":[],"finish_reason":"',
        b'":{"x":1},"obfuscation":"',
    ),
    ("responses", 12): (
        b'"}\n\n',
        b'"}\r\n\r\n',
        b'"}\n\ndata: [DONE]\n\n',
        b'","type":"error"}\n\n',
    ),
    ("gemini", 0): (
        b'data: {"candidates": [{"content": {"parts": [{"text": "',
        b'event: error\r\ndata: {"candidates": [{"content": {"parts": [{"text": "',
        b'data: {"type": "error", "parts": [{"text": "',
        b'data: {"candidates": [{"content": {"parts": [{"text":\r\n "',
    ),
    ("gemini", 6): (
        b'}],"usageMetadata": {"promptTokenCount": ',
        b'}],"usage": {"promptTokenCount": ',
        b'}],"usage": ',
        b'}],"finish_reason": ',
        b'}]}\r\n\r\ndata: {"promptTokenCount": ',
    ),
    ("gemini", 12): (b'},"modelVersion": "', b'},"type": "', b'},"modelVersion": "[DONE]", "x": "'),
    ("gemini", 16): (b'"}\r\n\r\n', b'"}\n\n', b'"}\r\n\r\ndata: [DONE]\r\n\r\n', b'"}\r\n'),
}
_NUMBERS = st.one_of(
    st.integers(0, 10**7).map(lambda i: b"%d" % i),
    st.sampled_from(
        [
            b"-1.5e3",
            b"0.25",
            b"1E+2",
            b"null",
            b"",
            b"true",
            b'"5"',
            b'5,"usage":{"a":1}',
            b"5}\n\ndata: [DONE]",
            b"5\r",
            b"5\n",
            b"e",
            b"E]",
            b"[DONE]",
            b'5,"type":"error"',
            b"-",
            b"5 ",
            b"{}",
        ]
    ),
)
_VALUES = st.one_of(
    _STRINGS,
    st.sampled_from(
        [b"null", b"-1.5e3", b"", b"[DONE]", b"usage", b"content", b"type", b"a\nb", b"a\rb"]
    ),
)


def _chunk(shape: tuple[bytes | str, ...], values: list[bytes], fixed: dict[int, bytes]) -> bytes:
    holes = iter(values)
    return b"".join(
        fixed.get(at, part) if isinstance(part, bytes) else next(holes)
        for at, part in enumerate(shape)
    )


def _hole_values(shape: tuple[bytes | str, ...], i: int, pad: int = 0) -> list[bytes]:
    """Ordinary values for chunk i: numbers that grow, strings of varying lengths."""
    out = []
    for part in shape:
        if part == N:
            out.append(b"%d" % (i * 37 + len(out)))
        elif part == S:
            out.append(b"tok%d" % i + b"x" * ((i + pad + len(out)) % 5))
    return out


@needs_native
@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(_SHAPES)),
    steps=st.lists(
        st.tuples(
            st.lists(st.one_of(st.none(), _NUMBERS, _VALUES), min_size=8, max_size=8),
            st.integers(0, 16),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=14,
    ),
    preset=st.sampled_from(sorted(PRESETS)),
    critical=st.booleans(),
)
def test_chunks_with_varying_holes_are_classified_alike(
    name: str,
    steps: list[tuple[list[bytes | None], int, int]],
    preset: str,
    critical: bool,
) -> None:
    """Consecutive chunks of a Responses or Gemini stream mostly keep their fixed parts and
    change their holes (None: an ordinary value; else any value in any hole: quotes, line
    ends, [DONE], key names, null, numbers and non-numbers), sometimes a fixed part (kept
    after): every answer is the Python twin's."""
    shape = _SHAPES[name]
    pair = _pair(preset, critical, SSE)
    fixed: dict[int, bytes] = {}
    for i, (values, at, pick) in enumerate(steps):
        switches = _SWITCHES.get((name, at))
        if switches is not None:
            fixed[at] = switches[pick % len(switches)]
        ordinary = _hole_values(shape, i)
        chosen = [
            v if v is not None else ordinary[h] for h, v in enumerate(values[: len(ordinary)])
        ]
        # Most chunks ordinary (so the stream reaches the memo), the rest hostile.
        _alike(pair, _chunk(shape, chosen if i % 3 == 2 else ordinary, fixed))
        _alike(pair, _chunk(shape, _hole_values(shape, i + 1, 2), fixed))


def _reach(name: str, preset: str = "auto", critical: bool = False) -> tuple[Any, Any]:
    """A pair of scanners whose C one reached the memo of holes of `name`'s shape."""
    shape = _SHAPES[name]
    pair = _pair(preset, critical, SSE)
    for i in range(3):
        assert _alike(pair, _chunk(shape, _hole_values(shape, i), {})) == CONTENT
    memo = pair[0]._memo
    kinds = "".join(part for part in shape if isinstance(part, str))
    assert memo is not None and memo[3] == kinds, memo
    return pair


_TWO = 2 << _table.EVENTS_SHIFT | 2  # two whole events, both content (the second one's data
# line starts with [DONE] and holds more)
_KINDS = {"responses": "NSNNSS", "gemini": "SSNNNNSS"}


@needs_native
@pytest.mark.parametrize("name", sorted(_SHAPES))
@pytest.mark.parametrize("preset", ["auto", "openai", "openai-responses", "plain"])
@pytest.mark.parametrize("critical", [False, True])
def test_a_stream_reaches_the_memo_of_holes_and_keeps_it(
    name: str, preset: str, critical: bool
) -> None:
    """One string, then two, then holes: from the third content chunk on the memo is the
    shape of holes, and values of every length keep it (no more learning)."""
    shape = _SHAPES[name]
    pair = _pair(preset, critical, SSE)
    answer = _alike(pair, _chunk(shape, _hole_values(shape, 0), {}))
    if answer != CONTENT:
        pytest.skip(f"{preset}: {name} is not content")
    for i in range(1, 3):
        assert _alike(pair, _chunk(shape, _hole_values(shape, i), {})) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[3] == _KINDS[name], memo
    for i in range(3, 60):
        values = _hole_values(shape, i * 1009, i)
        assert _alike(pair, _chunk(shape, values, {})) == CONTENT
        assert pair[0]._memo == memo


def _fixed_positions(name: str) -> list[int]:
    """Where the fixed parts' bytes are in a chunk of ordinary values."""
    shape, at, out = _SHAPES[name], 0, []
    values = iter(_hole_values(_SHAPES[name], 5))
    for part in shape:
        size = len(part) if isinstance(part, bytes) else len(next(values))
        if isinstance(part, bytes):
            out.extend(range(at, at + size))
        at += size
    return out


@needs_native
@pytest.mark.parametrize("name", sorted(_SHAPES))
def test_every_byte_of_the_fixed_parts_is_in_the_digest(name: str) -> None:
    """Any byte of the head, the gaps or the tail turned into a CR (which makes the chunk
    GENERAL, the lengths unchanged) is refused, and the memo still answers the next chunk."""
    shape = _SHAPES[name]
    chunk = _chunk(shape, _hole_values(shape, 5), {})
    positions = _fixed_positions(name)
    assert len(positions) > 150
    for at in positions:
        if chunk[at : at + 1] == b"\r":
            continue
        pair = _reach(name)
        memo = pair[0]._memo
        broken = chunk[:at] + b"\r" + chunk[at + 1 :]
        assert _alike(pair, broken) == GENERAL, at
        assert _alike(pair, _chunk(shape, _hole_values(shape, 7), {})) == CONTENT
        assert pair[0]._memo == memo


@needs_native
@pytest.mark.parametrize(
    ("name", "value", "critical", "answer"),
    [
        # numbers that are not numbers: what follows a number hole takes the walk
        ("responses", (0, b'5,"usage":{"a":1}'), False, GENERAL),
        ("responses", (0, b'5,"type":"error"'), True, GENERAL),
        ("responses", (0, b"5}\n\ndata: [DONE]"), False, _TWO),
        ("responses", (0, b"5\r"), False, GENERAL),
        ("responses", (0, b""), False, CONTENT),
        ("responses", (0, b"null"), False, CONTENT),
        ("responses", (0, b"-1.5e3"), False, CONTENT),
        ("gemini", (2, b"0\r\n\r\ndata: [DONE]"), False, _TWO),
        # strings that are not plain: a quote, [DONE], a key's name, a line end, empty
        ("responses", (4, b"[DONE]"), True, GENERAL),
        ("responses", (4, b"usage"), False, CONTENT),
        ("responses", (4, b'x","usage":{"a":1},"y":"'), False, GENERAL),
        ("responses", (4, b'x","type":"error'), True, GENERAL),
        ("responses", (4, b""), False, CONTENT),
        ("gemini", (0, b'x"}]}}],"usage":{"a":1},"z":"'), False, GENERAL),
        ("gemini", (0, b"a\r\n\r\ndata: [DONE]"), False, _TWO),
        ("gemini", (7, b"usage"), False, CONTENT),
    ],
)
def test_values_that_change_the_answer_are_refused(
    name: str, value: tuple[int, bytes], critical: bool, answer: int
) -> None:
    """A hole holding bytes that would change the answer (usage, a critical type, [DONE], a
    second event, a CR) gets the walk's answer, and the memo answers the next chunk."""
    shape = _SHAPES[name]
    pair = _reach(name, "auto", critical)
    memo = pair[0]._memo
    values = _hole_values(shape, 9)
    values[value[0]] = value[1]
    assert _alike(pair, _chunk(shape, values, {})) == answer
    if answer != CONTENT:
        assert _alike(pair, _chunk(shape, _hole_values(shape, 11), {})) == CONTENT
        assert pair[0]._memo == memo


@needs_native
@pytest.mark.parametrize(
    "shape",
    [
        # a number in a string, a number after a key of other bytes, after two spaces, a
        # number before a colon: none is a hole, so the memo misses when it changes
        (b'data: {"a":"x", "type":"t:', N, b',","b":"', S, b'","c":"', S, b'"}\n\n'),
        (b'data: {"a b":', N, b',"b":"', S, b'","c":"', S, b'"}\n\n'),
        (b'data: {"ab":  ', N, b',"b":"', S, b'","c":"', S, b'"}\n\n'),
        (b'data: {"ab":', N, b':1,"b":"', S, b'","c":"', S, b'"}\n\n'),
        (b"event: x:", N, b',\ndata: {"b":"', S, b'","c":"', S, b'"}\n\n'),
    ],
)
def test_numbers_outside_a_keys_value_are_no_holes(shape: tuple[bytes | str, ...]) -> None:
    """Where a run of digits is not a value after `"key":` (inside a "type" string, after a
    key with a space, after two spaces, before a colon, on an event line), it stays in the
    digested bytes: a chunk that changes it is answered by the walk, like the Python twin."""
    pair = _pair("auto", True, SSE)
    for i in range(4):
        chunk = _chunk(shape, [b"%d" % (i % 2), b"s%d" % i, b"x" * (i + 1)], {})
        _alike(pair, chunk)
        memo = pair[0]._memo
        assert memo is None or (len(memo) == 3 or "N" not in memo[3]), memo


@needs_native
@pytest.mark.parametrize("critical", [False, True])
def test_a_number_on_an_event_line_is_no_hole(critical: bool) -> None:
    """An event line's name is the rest of its line: a number there (`event: {"a":1}`, a name
    in the stream's metadata) must stay digested, or a chunk naming a metadata event would
    be the memo's content."""
    pair = _pair("auto", critical, SSE)
    for scan in pair:
        scan.metadata = frozenset({b'{"a":1}'})
    shape = (b'data: {"b":"', S, b'","c":"', S, b'"}\nevent: {"a":', N, b"}\n\n")
    for i in (0, 2, 3, 4, 5, 6):
        chunk = _chunk(shape, [b"s%d" % i, b"x" * i, b"%d" % i], {})
        assert _alike(pair, chunk) == CONTENT
    assert _alike(pair, _chunk(shape, [b"s", b"xy", b"1"], {})) == OTHER


@needs_native
@pytest.mark.parametrize("critical", [False, True])
def test_a_null_is_no_number(critical: bool) -> None:
    """A chat chunk's `"content":` followed by a number has content, by `null` has none: the
    number hole takes number bytes only, so `null` there gets the walk's answer."""
    pair = _pair("openai", critical, SSE)
    shape = (
        b'data: {"id":"',
        S,
        b'","object":"chat.completion.chunk","choices":[{"delta":{"content":',
        N,
        b'}}],"x":"',
        S,
        b'","y":"',
        S,
        b'"}\n\n',
    )
    for i in range(1, 6):
        chunk = _chunk(shape, [b"c%d" % i, b"%d" % (i * 11), b"s" * i, b"t%d" % i], {})
        assert _alike(pair, chunk) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[3] == "SNSS", memo
    assert _alike(pair, _chunk(shape, [b"c", b"null", b"s", b"t"], {})) == OTHER
    assert _alike(pair, _chunk(shape, [b"c", b"-1.5e3", b"s", b"t"], {})) == CONTENT


@needs_native
@pytest.mark.parametrize("critical", [False, True])
def test_a_string_hole_that_a_gap_makes_a_key_refuses_a_key_name(critical: bool) -> None:
    """Where the gap after a string hole starts with a colon the string is a key: learned
    from names that are no key's, the memo must refuse a key's name there."""
    pair = _pair("auto", critical, SSE)
    shape = (
        b'data: {"m":"',
        S,
        b'":{"total_tokens":1},"c":"',
        S,
        b'","d":"',
        S,
        b'","e":',
        N,
        b"}\n\n",
    )
    for i in range(1, 5):
        chunk = _chunk(shape, [b"n%d" % i, b"s" * i, b"t%d" % i, b"%d" % i], {})
        assert _alike(pair, chunk) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[3] == "SNSSN", memo  # total_tokens a hole too
    assert _alike(pair, _chunk(shape, [b"usage", b"s", b"t", b"7"], {})) == GENERAL


_OLLAMA: tuple[bytes | str, ...] = (
    b'{"model":"llama3.2","created_at":"',
    S,
    b'","message":{"role":"assistant","content":"',
    S,
    b'"},"done":false,"eval_count":',
    N,
    b',"eval_duration":',
    N,
    b"}\n",
)
_OLLAMA_SWITCHES = (
    b'"},"done":false,"eval_count":',
    b'"},"done":true,"usage":',
    b'"},"type":"error","eval_count":',
    b'"}}\n{"eval_count":',
    b'"}\r,"eval_count":',
)


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(st.one_of(st.none(), _NUMBERS, _VALUES), min_size=4, max_size=4),
            st.one_of(st.none(), st.sampled_from(_OLLAMA_SWITCHES)),
        ),
        min_size=1,
        max_size=14,
    ),
    preset=st.sampled_from(sorted(PRESETS)),
    critical=st.booleans(),
)
def test_ndjson_chunks_with_varying_holes_are_classified_alike(
    steps: list[tuple[list[bytes | None], bytes | None]], preset: str, critical: bool
) -> None:
    """NDJSON lines (Ollama's chat stream: a timestamp, the content, counts) with ordinary and
    hostile holes and a middle sometimes switched: every answer is the Python twin's, and an
    ordinary stream reaches the memo of holes."""
    pair = _pair(preset, critical, LINES)
    fixed: dict[int, bytes] = {}
    for i in range(3):
        assert _alike(pair, _chunk(_OLLAMA, _hole_values(_OLLAMA, i), fixed)) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[3] == "SSSSNN", memo  # the model and role too
    for i, (values, switch) in enumerate(steps):
        if switch is not None:
            fixed[4] = switch
        ordinary = _hole_values(_OLLAMA, i + 3)
        chosen = [v if v is not None else ordinary[h] for h, v in enumerate(values)]
        _alike(pair, _chunk(_OLLAMA, chosen, fixed))
        _alike(pair, _chunk(_OLLAMA, _hole_values(_OLLAMA, i + 4, 1), fixed))


@needs_native
def test_digits_in_a_type_value_are_no_hole() -> None:
    """`"type":"ab:1,"` has digits after a colon, but inside a "type" value (the key's closing
    quote is not right before the colon): a critical name there must stay digested."""
    pair = _pair("auto", True, SSE)
    for scan in pair:
        scan.critical_names = frozenset({b"ab:1,"})
    shape = (b'data: {"type":"ab:', N, b',","b":"', S, b'","c":"', S, b'"}\n\n')
    for i in (0, 2, 3, 4, 5, 6):
        assert _alike(pair, _chunk(shape, [b"%d" % i, b"s%d" % i, b"x" * i], {})) == CONTENT
    assert _alike(pair, _chunk(shape, [b"1", b"s", b"xy"], {})) == GENERAL
