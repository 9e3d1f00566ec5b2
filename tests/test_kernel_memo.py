"""The C classify memo on the shapes it learns besides OpenAI's: token, Anthropic, NDJSON.

The memo keeps the bytes around the last string value of an SSE or NDJSON content chunk (its
head up to the string, its tail after it) and answers CONTENT for a later chunk with the same
bytes there and a plain string between (docs/architecture.md, "The classify memo"). The Python
twin has no memo, so every answer here compares a C scanner that saw the whole stream with a
Python one; tests/test_kernel_walk.py does the same for OpenAI chat chunks.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_kernel_walk import _CONTENTS, _scan, needs_native

from streamboost._stream import _kernel, _table
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._presets import PRESETS

SSE, LINES = _table.FORMAT_SSE, _table.FORMAT_LINES
CONTENT, OTHER, GENERAL = _table.CONTENT, _table.OTHER, _table.GENERAL

_ANTHROPIC = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"'
)
# Heads up to a last string's opening quote: token, Anthropic, Responses, Vercel and NDJSON
# chunks, and heads whose string is a "type" value, a usage or finish value, on an event
# line, the only data, or behind an escaped quote.
_HEADS = (
    b'data: {"token":"',
    b'data: {"token": "',
    b'id: 7\ndata: {"token":"',
    b'event: token\ndata: {"token":"',
    b'event: error\ndata: {"token":"',
    b'data: {"type":"x","text":"',
    b'data: {"type":"error","text":"',
    b'data: {"type":"text-delta","id":"0","delta":"',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"',
    _ANTHROPIC,
    _ANTHROPIC.replace(b"content_block_delta", b"message_stop"),
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"',
    b'event: ping\ndata: {"type":"ping","x":"',
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"',
    b'data: {"usage":"',
    b'data: {"a":1,"usage":null,"t":"',
    b'data: {"finish_reason":"',
    b'data: {"type" : "',
    b'data: {"x":"a","type":\t"',
    b'data: {"a":"\\"","b":"',
    b'data: {"x":1}\nevent: {"text":"',
    b'{"text":"',
    b'{"model":"m","message":{"role":"assistant","content":"',
    b'{"type":"error","message":"',
    b'event: {"a":"',
)
# Tails from a last string's closing quote: SSE and NDJSON ends, usage, a critical "type",
# finish and stop reasons, CRLF, a second event, [DONE], and tails that make a key of the string.
_TAILS = (
    b'"}\n\n',
    b'"}}\n\n',
    b'"},"usage":null}\n\n',
    b'"},"usage":{"output_tokens":1}}\n\n',
    b'","type":"error"}\n\n',
    b'","finish_reason":"stop"}\n\n',
    b'","finish_reason":null}\n\n',
    b'"},"stop_reason":"end_turn"}\n\n',
    b'"}\r\n\r\n',
    b'"}\n\ndata: [DONE]\n\n',
    b'"}\n\nevent: error\ndata: {}\n\n',
    b'","x":"[DONE]"}\n\n',
    b'":{"total_tokens":1}}\n\n',
    b'":null,"n":1}\n\n',
    b'"}\n',
    b'","done":false}\n',
    b'","usage":{"a":1}}\n',
    b'","error":"x"}\n',
    b'":[1]}\n',
    b'"}\r\n',
)
_STRINGS = st.one_of(
    _CONTENTS,
    st.sampled_from(
        [
            b"error",
            b"message_stop",
            b"text_delta",
            b"content_block_delta",
            b"stop_reason",
            b"token",
            b"event: error",
            b'\\"',
            b"x\\",
            b'x","type":"error',
            b'x"}\n\n',
            b"x\r\ny",
        ]
    ),
)


def _pair(preset: str, critical: bool, fmt: int) -> tuple[Any, Any]:
    return _scan(_kernel.ScanBase, fmt, preset, critical), _scan(PyScanBase, fmt, preset, critical)


def _alike(pair: tuple[Any, Any], chunk: bytes) -> int:
    native, python = pair
    kind: int = python.classify(chunk)
    assert native.classify(chunk) == kind, chunk
    return kind


@needs_native
@settings(max_examples=500, deadline=None)
@given(
    shape=st.tuples(st.sampled_from(_HEADS), st.sampled_from(_TAILS)),
    steps=st.lists(
        st.tuples(
            _STRINGS,
            st.one_of(st.none(), st.sampled_from(_HEADS)),
            st.one_of(st.none(), st.sampled_from(_TAILS)),
        ),
        min_size=1,
        max_size=12,
    ),
    fmt=st.sampled_from([SSE, LINES]),
    preset=st.sampled_from(sorted(PRESETS)),
    critical=st.booleans(),
)
def test_token_anthropic_and_ndjson_chunks_sharing_a_head_and_tail_are_classified_alike(
    shape: tuple[bytes, bytes],
    steps: list[tuple[bytes, bytes | None, bytes | None]],
    fmt: int,
    preset: str,
    critical: bool,
) -> None:
    """As the OpenAI test in test_kernel_walk.py: consecutive chunks mostly keep the head and
    tail of the one before (None) and change the string (quotes, backslashes, line ends,
    [DONE], key and event names in it), sometimes the head or the tail."""
    pair = _pair(preset, critical, fmt)
    head, tail = shape
    for string, new_head, new_tail in steps:
        head, tail = new_head or head, new_tail or tail
        _alike(pair, head + string + tail)


_TWO = 2 << _table.EVENTS_SHIFT | 2  # a chunk of two whole content events
_TOKEN = b'data: {"token":"%s"}\n\n'
_DELTA = _ANTHROPIC + b'%s"}}\n\n'
_CHAT = b'data: {"object":"%s","delta":{}}\n\n'
_NAMED = b"event: %s\n" + _DELTA[_DELTA.index(b"data:") :] % b"a"
_TYPED = b'data: {"type":"%s","text":"a"}\n\n'
_LINE = b'{"token":"a"%s}\n'
_MESSAGE_DELTA = (
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"output_tokens":15}}\n\n'
)
# (preset, critical, fmt, a template, the string the memo learns from in it, the string it
# must not answer for, that one's answer); the two fill the same bytes where only a digest
# tells them apart.
_REFUSED = [
    # the head: a "type" value or event name, a key before the string, a usage before it
    ("auto", True, SSE, _TYPED, b"xxxxx", b"error", GENERAL),
    ("anthropic", False, SSE, _TYPED, b"content_block_delta", b"content_block_stop_", OTHER),
    ("anthropic", False, SSE, _NAMED, b"content_block_delta", b"       message_stop", OTHER),
    ("auto", True, SSE, _NAMED, b"content_block_delta", b"       message_stop", GENERAL),
    ("anthropic", True, SSE, b"%s", _DELTA % b"a", _MESSAGE_DELTA, GENERAL),
    ("openai", False, SSE, b'data: {"%s":"abc"}\n\n', b"token", b"usage", GENERAL),
    ("auto", True, SSE, b'data: {%s:"error"}\n\n', b'"token"', b'"type" ', GENERAL),
    ("auto", False, SSE, b'data: {"a":1,"usage":%s,"t":"x"}\n\n', b"null", b"1234", GENERAL),
    ("auto", True, LINES, b'{"type":"%s","text":"a"}\n', b"token", b"error", GENERAL),
    # the tail: a usage, a CR, a critical "type"
    ("auto", False, SSE, b'data: {"token":"a","usage":%s}\n\n', b"null", b"1234", GENERAL),
    ("plain", False, LINES, b'{"token":"a","usage":%s}\n', b"null", b"1234", GENERAL),
    ("plain", False, SSE, b'data: {"token":"a"}%s\n', b"\n", b"\r", GENERAL),
    ("auto", True, LINES, _LINE, b"", b',"usage":{"output_tokens":1}', GENERAL),
    ("auto", True, LINES, _LINE, b"", b',"type":"error"', GENERAL),
    # the string: a key's name, quotes or line ends faking the structure, [DONE]
    ("plain", False, SSE, b'data: {"token":"%s":{"n":1}}\n\n', b"a", b"usage", GENERAL),
    ("plain", False, LINES, b'{"token":"%s":{"n":1}}\n', b"a", b"usage", GENERAL),
    ("auto", True, SSE, b'data: {"token":"%s":1}\n\n', b"a", b"finish_reason", GENERAL),
    ("openai", False, SSE, _CHAT, b"a", b"chat.completion.chunk", OTHER),
    ("auto", True, SSE, _TOKEN, b"a", b'x","type":"error', GENERAL),
    ("plain", False, SSE, _TOKEN, b"a", b'\\","usage":{"n":1},"x":"\\', GENERAL),
    ("plain", False, SSE, _TOKEN, b"a", b"x\n\ndata: y", _TWO),  # two events, both content
    ("plain", False, SSE, _TOKEN, b"a", b"x\ry", GENERAL),
    ("auto", True, SSE, _DELTA, b"a", b"a [DONE] b", GENERAL),
    ("auto", True, LINES, b'{"token":"%s"}\n', b"a", b"[DONE]", GENERAL),
    ("plain", False, LINES, b'{"token":"%s"}\n', b"a", b"x\ny", _TWO),
]


@needs_native
@pytest.mark.parametrize(
    ("preset", "critical", "fmt", "template", "learned", "other", "answer"), _REFUSED
)
def test_a_learned_memo_does_not_answer_for_another_shape_or_string(
    preset: str,
    critical: bool,
    fmt: int,
    template: bytes,
    learned: bytes,
    other: bytes,
    answer: int,
) -> None:
    """Each chunk the memo must refuse comes right after one of the memo's shape; the two
    differ in the head, the tail or the string, and the answer is not CONTENT."""
    pair = _pair(preset, critical, fmt)
    assert _alike(pair, template % learned) == CONTENT
    assert pair[0]._memo is not None, template % learned
    assert _alike(pair, template % other) == answer
    assert _alike(pair, template % learned) == CONTENT


# (preset, critical, fmt, a CONTENT chunk the memo must not learn, then one of its shape)
_UNLEARNED = [
    ("plain", False, SSE, b'data: {"usage":""}\n\n', b'data: {"usage":"x"}\n\n'),
    ("plain", False, LINES, b'{"usage":""}\n', b'{"usage":"x"}\n'),
    ("auto", True, SSE, b'data: {"type":"xxxxx"}\n\n', b'data: {"type":"error"}\n\n'),
    ("auto", True, SSE, b'data: {"type" :\t"xxxxx"}\n\n', b'data: {"type" :\t"error"}\n\n'),
    (
        "anthropic",
        False,
        SSE,
        b'data: {"type":"content_block_delta"}\n\n',
        b'data: {"type":"content_block_stop_"}\n\n',
    ),
    ("auto", True, LINES, b'{"k":1,"type":"token"}\n', b'{"k":1,"type":"error"}\n'),
    ("plain", False, SSE, b'data: {"usage":{},"}\n\n', b'data: {"usage":1,"}\n\n'),
    ("plain", False, LINES, b'{"usage":{},"}\n', b'{"usage":1,"}\n'),
    ("plain", False, SSE, b'{"token":"data: x"}\n\n', b'{"token":"x"}\n\n'),
    ("plain", False, SSE, b'data: {"id":"' + b"i" * 800 + b'","token":"a"}\n\n', b""),
]


@needs_native
@pytest.mark.parametrize(("preset", "critical", "fmt", "chunk", "then"), _UNLEARNED)
def test_the_memo_does_not_learn_an_empty_or_type_string_nor_one_after_no_colon_or_data(
    preset: str, critical: bool, fmt: int, chunk: bytes, then: bytes
) -> None:
    """An empty string ("usage":"" has no value, "usage":"x" has), a "type" value, a
    "string" that follows a key rather than a colon, one before any "data:", a head past
    the digest's 48 blocks: not learned, and the next chunk is the walk's."""
    pair = _pair(preset, critical, fmt)
    assert _alike(pair, chunk) == CONTENT
    assert pair[0]._memo is None, chunk
    if then:
        assert _alike(pair, then) != CONTENT


_TOK = b'event: tok\ndata: {"token":"%s"}\n\n'


@needs_native
@pytest.mark.parametrize(
    ("fmt", "field", "chunk"),
    [
        (SSE, "metadata", _TOK),
        (SSE, "critical_names", _TOK),
        (SSE, "content_names", _TOK),
        (SSE, "critical_names", b'data: {"type":"tok","token":"%s"}\n\n'),
        (LINES, "critical_names", b'{"type":"tok","token":"%s"}\n'),
    ],
)
def test_the_memo_is_not_learned_under_a_set_that_can_change(
    fmt: int, field: str, chunk: bytes
) -> None:
    """A mutable set can change between two chunks without a field being set: under one no
    chunk is learned, and the name added to (or taken from) it after a chunk counts."""
    names: set[bytes] = {b"tok"} if field == "content_names" else set()
    pair = _pair("plain", field == "critical_names", fmt)
    for scan in pair:
        setattr(scan, field, names)
    assert _alike(pair, chunk % b"a") == CONTENT
    assert pair[0]._memo is None
    names.symmetric_difference_update({b"tok"})
    assert _alike(pair, chunk % b"b") != CONTENT


@needs_native
@pytest.mark.parametrize("fmt", [SSE, LINES])
def test_a_string_on_an_event_line_is_not_learned(fmt: int) -> None:
    """On an `event:` line the string is part of that event's name (metadata for SSE,
    critical for NDJSON here): not learned, and the name that counts is read."""
    pair = _pair("plain", True, fmt)
    for scan in pair:
        scan.metadata = frozenset({b'{"text":"ping"}'})
        scan.critical_names = frozenset({b'{"text":"error"}'})
    head = b'data: {"x":1}\nevent: {"text":"' if fmt == SSE else b'event: {"text":"'
    end = b'"}\n\n' if fmt == SSE else b'"}\n'
    assert _alike(pair, head + b"tok" + end) == CONTENT
    assert pair[0]._memo is None
    assert _alike(pair, head + (b"ping" if fmt == SSE else b"error") + end) != CONTENT


@needs_native
@pytest.mark.parametrize(
    ("fmt", "learned", "strings"),
    [
        (SSE, _TOKEN, [b"b", b"error", b"\\\\", b"x\\", b"\\n", b"[x]", b'\\"', b"text_delta"]),
        (SSE, b'data: {"type":"x","text":"%s"}\n\n', [b"error", b"message_stop", b"x"]),
        (SSE, _DELTA, [b"b", b"message_stop", b"type", b"a\\", b" [DON"]),
        (LINES, b'{"token":"%s"}\n', [b"b", b"error", b"\\", b"a\\u0022"]),
    ],
)
@pytest.mark.parametrize("preset", ["auto", "anthropic", "plain"])
def test_the_memo_answers_plain_strings_alike(
    fmt: int, learned: bytes, strings: list[bytes], preset: str
) -> None:
    """Backslashes, names that are no key's and a '[' without DONE keep the memo's answer:
    the same as the walk's."""
    for critical in (False, True):
        pair = _pair(preset, critical, fmt)
        if _alike(pair, learned % b"a") != CONTENT:
            continue  # a token chunk is no Anthropic content
        assert pair[0]._memo is not None
        for string in strings:
            _alike(pair, learned % string)


@needs_native
@pytest.mark.parametrize(
    ("fmt", "start", "end", "breaker"),
    [(LINES, b"", b"\n", b"\n"), (SSE, b"data:", b"\n\n", b"\r")],
)
def test_every_byte_of_the_head_and_the_tail_is_in_the_digest(
    fmt: int, start: bytes, end: bytes, breaker: bytes
) -> None:
    """Tails of every length from 2 bytes and heads from 7, to three 16-byte blocks: a space
    anywhere in them turned into a line end, which makes the chunk no single event, is
    refused (the lengths stay, so only the digest tells the two apart)."""
    for spaces in range(1, 40):
        pad = b" " * spaces
        for side in ("head", "tail"):
            pair = _pair("plain", False, fmt)

            def chunk(gap: bytes, side: str = side) -> bytes:
                head, tail = (gap, b"") if side == "head" else (b"", gap)
                return start + head + b'{"t":"a"' + tail + end

            assert _alike(pair, chunk(pad)) == CONTENT
            assert pair[0]._memo is not None, chunk(pad)
            for at in range(spaces):
                assert _alike(pair, chunk(pad[:at] + breaker + pad[at + 1 :])) == GENERAL
