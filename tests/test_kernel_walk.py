"""``ScanBase.classify``'s C walk against the Python rules, on chunks as apps send them.

The C twin reads a chunk in one walk of 16-byte blocks (the last one overlapping the one
before it), so these bodies have every length from a few bytes to several blocks, with the
keys and line ends at every offset; and it looks names up in compiled copies of the
scanner's frozensets (a table shared by every stream), so sets of every kind go through it:
``str`` elements, a mutable ``set``, long names, and more sets than the table holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamboost._stream import NATIVE, _kernel, _table
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._presets import PRESETS

needs_native = pytest.mark.skipif(
    not NATIVE, reason="streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)"
)

FORMATS = (_table.FORMAT_SSE, _table.FORMAT_LINES, _table.FORMAT_CHUNKS)


def _scan(kind: type[Any], fmt: int, preset: str, critical: bool) -> Any:
    rules = PRESETS[preset]
    scan = kind()
    scan.fmt, scan.fast, scan.pending = fmt, True, 0
    scan.metadata = rules.metadata
    scan.critical_names = rules.critical if critical else None
    scan.content_names = rules.content
    scan.openai_chat = rules.openai_chat
    return scan


def _alike(body: bytes, fmt: int, preset: str, critical: bool) -> int:
    native = _scan(_kernel.ScanBase, fmt, preset, critical)
    python = _scan(PyScanBase, fmt, preset, critical)
    kind: int = native.classify(body)
    assert kind == python.classify(body), (body, fmt, preset, critical)
    return kind


# Chunks as the presets' apps send them; {} is the text, {fr} the finish reason, {extra} a
# field that may make the chunk critical or not content.
_TEMPLATES = (
    b'data: {{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{{"index":0,"delta":{{"content":"{}"}},"finish_reason":{fr}}}]'
    b"{extra}}}\n\n",
    b'event: content_block_delta\ndata: {{"type":"content_block_delta","index":0,'
    b'"delta":{{"type":"text_delta","text":"{}"}}{extra}}}\n\n',
    b'event: response.output_text.delta\ndata: {{"type":"response.output_text.delta",'
    b'"delta":"{}"{extra}}}\n\n',
    b'data: {{"type":"text-delta","id":"0","delta":"{}"{extra}}}\n\n',
    b'data: {{"token": "{}"{extra}}}\n\n',
    b'{{"token":"{}"{extra}}}\n',
    b"{}",
)
_EXTRAS = (
    b"",
    b',"usage":null',
    b',"usage":{"prompt_tokens":1}',
    b',"tool_calls":[{"index":0}]',
    b',"type":"error"',
    b',"type":"message_stop"',
    b',"x":"[DONE]"',
    b',"content":""',
)
_FINISH = (b"null", b'"stop"', b'""')
_TEXT = st.text(
    alphabet=st.sampled_from(list(' abcDE"\\\n\r[]{}:,tfuc')), min_size=0, max_size=90
).map(lambda text: text.encode())


@needs_native
@settings(max_examples=500, deadline=None)
@given(
    template=st.sampled_from(_TEMPLATES),
    text=_TEXT,
    finish=st.sampled_from(_FINISH),
    extra=st.sampled_from(_EXTRAS),
    pad=st.integers(0, 40),
    fmt=st.sampled_from(FORMATS),
    preset=st.sampled_from(["auto", "openai", "anthropic", "openai-responses", "vercel-ai"]),
    critical=st.booleans(),
)
def test_app_chunks_of_every_length_are_classified_alike(
    template: bytes,
    text: bytes,
    finish: bytes,
    extra: bytes,
    pad: int,
    fmt: int,
    preset: str,
    critical: bool,
) -> None:
    # Spaces after "data:" move every key and line end by `pad` bytes (JSON keeps its
    # meaning; an event name line keeps its place).
    body = template.replace(b"{fr}", finish).replace(b"{extra}", extra)
    body = body.replace(b"{{", b"{").replace(b"}}", b"}").replace(b"{}", text, 1)
    body = body.replace(b"data: ", b"data: " + b" " * pad, 1)
    if not body:
        body = b"x"
    _alike(body, fmt, preset, critical)


def test_a_plain_openai_chunk_is_content_and_its_finish_is_critical() -> None:
    """The walk answers the cases the bench streams, on both paths (not only alike)."""
    chunk = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"sim","choices":[{"index":0,"delta":{"content":" tok7"},'
        b'"finish_reason":null}]}\n\n'
    )
    for kind in (PyScanBase, _kernel.ScanBase):
        scan = _scan(kind, _table.FORMAT_SSE, "auto", True)
        assert scan.classify(chunk) == _table.CONTENT
        assert scan.classify(chunk.replace(b"null", b'"stop"')) == _table.GENERAL
        assert scan.classify(chunk.replace(b'" tok7"', b'""')) == _table.OTHER
        assert scan.classify(chunk[:-1] + b"\r\n") == _table.GENERAL
        anthropic = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":" tok7"}}\n\n'
        )
        assert scan.classify(anthropic) == _table.CONTENT
        assert scan.classify(anthropic.replace(b"content_block_delta", b"ping")) == _table.OTHER
        stop = anthropic.replace(b"content_block_delta", b"message_stop")
        assert scan.classify(stop) == _table.GENERAL


class _Name(bytes):
    """A bytes subclass: a set holding one is looked up by PySet_Contains, as Python does."""


@needs_native
@pytest.mark.parametrize(
    "names",
    [
        frozenset({b"ping", "ping", b"metadata"}),
        {b"ping", b"metadata"},
        frozenset({_Name(b"ping")}),
        frozenset({b"p" * 63, b"p" * 64, b"p" * 65, b"p" * 200}),
        frozenset(),
    ],
)
@pytest.mark.parametrize("name", [b"ping", b"pin", b"pingg", b"p" * 64, b"p" * 66, b"p" * 200])
def test_event_names_are_looked_up_alike_in_every_kind_of_set(
    names: frozenset[Any] | set[Any], name: bytes
) -> None:
    body = b"event: " + name + b'\ndata: {"token": "x"}\n\n'
    for critical in (False, True):
        scans = [kind() for kind in (_kernel.ScanBase, PyScanBase)]
        for scan in scans:
            scan.fmt, scan.fast, scan.pending = _table.FORMAT_SSE, True, 0
            scan.metadata = names
            scan.critical_names = frozenset(names) if critical else None
            scan.content_names = None
            scan.openai_chat = True
        native, python = scans
        assert native.classify(body) == python.classify(body), (names, name, critical)


@needs_native
def test_more_sets_than_the_c_table_holds_still_answer_alike() -> None:
    """Twenty scanners with sets of their own, taken in turn twice: the shared table of
    compiled sets replaces its entries, and no answer changes."""
    scans = []
    for i in range(20):
        pair = []
        for kind in (_kernel.ScanBase, PyScanBase):
            scan = kind()
            scan.fmt, scan.fast, scan.pending = _table.FORMAT_SSE, True, 0
            scan.metadata = frozenset({b"meta%d" % i})
            scan.critical_names = frozenset({b"stop%d" % i})
            scan.content_names = frozenset({b"delta%d" % i, b"delta"})
            scan.openai_chat = False
            pair.append(scan)
        scans.append(pair)
    for _ in range(2):
        for i, (native, python) in enumerate(scans):
            for name in (
                b"meta%d" % i,
                b"stop%d" % i,
                b"delta%d" % i,
                b"delta",
                b"meta%d" % (i + 1),
            ):
                body = b"event: " + name + b"\ndata: {}\n\n"
                typed = b'data: {"type":"' + name + b'"}\n\n'
                for chunk in (body, typed):
                    assert native.classify(chunk) == python.classify(chunk), (i, chunk)


@needs_native
@pytest.mark.parametrize(
    "value",
    [b"error", b"err\x00or", b"\x00", b"error\\", b"error\\x", b"", b"message_stop\x00"],
)
@pytest.mark.parametrize("closed", [True, False])
def test_type_values_with_nul_and_backslash_bytes_are_read_alike(
    value: bytes, closed: bool
) -> None:
    """The C reader of a "type" value stops at a quote, a backslash or the bytes' end (the NUL
    CPython keeps there), and passes a NUL inside the value, as the regex does."""
    tail = b'"}\n\n' if closed else b""
    for template in (b'data: {"type":"%s%s', b'data: {"x":1,"type" : "%s%s'):
        body = template % (value, tail)
        for fmt in FORMATS:
            for preset in ("auto", "vercel-ai", "anthropic"):
                for critical in (False, True):
                    _alike(body or b"x", fmt, preset, critical)
                    _alike(body + b'{"type":"error"}\n\n', fmt, preset, critical)


# -- the C memo of the last OpenAI content chunk's shape ---------------------------------------
# The C classify remembers where the last OpenAI content chunk's "content" string starts, the
# length of what follows it and a digest of the bytes around it; a chunk with the same bytes
# there and a plain string is CONTENT without the walk. The Python twin has no memo, so every
# answer below compares a C scanner that saw the whole stream with a Python one.

_PREFIXES = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":"',
    b'data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":"',
    b'id: 7\ndata: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
    b'"choices":[{"index":0,"delta":{"content": "',
    b'event: error\ndata: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":'
    b'{"content":"',
    b'event: ping\ndata: {"object":"chat.completion.chunk","delta":{"content":"',
    b'data: {"object":"chat.completion.chunk","type":"error","delta":{"content":"',
    b'data: {"object":"chat.completion.chunk","delta":{"role":"assistant","content":"',
    b'data: {"object":"chat.completion.chunk","delta":{"type":"text-delta","content":"',
)
_TAILS = (
    b'"},"finish_reason":null}]}\n\n',
    b'"},"finish_reason":"stop"}]}\n\n',
    b'"},"finish_reason":null}],"usage":null}\n\n',
    b'"},"finish_reason":null}],"usage":{"prompt_tokens":1}}\n\n',
    b'","tool_calls":[{"index":0}]}}]}\n\n',
    b'"},"finish_reason":null}]}\r\n\r\n',
    b'"},"finish_reason":null}]}\n\ndata: [DONE]\n\n',
    b'"}}]}\n\n',
    b'"},"x":"[DONE]"}]}\n\n',
    b'"}}]}\n',
)
_CONTENTS = st.one_of(
    st.sampled_from(
        [
            b" tok",
            b"",
            b"usage",
            b"type",
            b"content",
            b"finish_reason",
            b"tool_calls",
            b"chat.completion.chunk",
            b"[DONE]",
            b" [DONE] ",
            b"[x]",
            b'\\"content\\":\\"',
            b'","finish_reason":"stop',
            b'"}}]}\n\ndata: {"x":"',
            b"a\\",
            b"\\\\",
            b"\\n",
        ]
    ),
    st.text(alphabet=st.sampled_from(list(' abc"\\\n\r[]{}:,DONE')), max_size=12).map(
        lambda text: text.encode()
    ),
)


def _memo_stream_alike(
    chunks: list[bytes], preset: str, critical: bool, fmt: int = _table.FORMAT_SSE
) -> Any:
    native = _scan(_kernel.ScanBase, fmt, preset, critical)
    python = _scan(PyScanBase, fmt, preset, critical)
    for chunk in chunks:
        assert native.classify(chunk) == python.classify(chunk), (chunk, preset, critical)
    return native


@needs_native
@settings(max_examples=400, deadline=None)
@given(
    shape=st.tuples(st.sampled_from(_PREFIXES), st.sampled_from(_TAILS)),
    steps=st.lists(
        st.tuples(
            _CONTENTS,
            st.one_of(st.none(), st.sampled_from(_PREFIXES)),
            st.one_of(st.none(), st.sampled_from(_TAILS)),
        ),
        min_size=1,
        max_size=12,
    ),
    preset=st.sampled_from(["auto", "openai", "anthropic", "openai-responses", "vercel-ai"]),
    critical=st.booleans(),
)
def test_chunks_that_share_a_prefix_and_a_tail_are_classified_alike(
    shape: tuple[bytes, bytes],
    steps: list[tuple[bytes, bytes | None, bytes | None]],
    preset: str,
    critical: bool,
) -> None:
    """Consecutive chunks mostly keep the prefix and the tail of the one before (None) and
    change the content: quotes, backslashes, line ends, "[DONE]", key names and
    '"content":"' text in it; sometimes the prefix (another id, app id:/event: lines, a
    critical "type") or the tail (finish_reason, usage, tool_calls, CRLF, a second event)."""
    prefix, tail = shape
    chunks = []
    for content, new_prefix, new_tail in steps:
        prefix, tail = new_prefix or prefix, new_tail or tail
        chunks.append(prefix + content + tail)
    _memo_stream_alike(chunks, preset, critical)


_PLAIN = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"sim","choices":[{"index":0,"delta":{"content":"%s"},'
    b'"finish_reason":%s}]}\n\n'
)


@needs_native
@pytest.mark.parametrize("critical", [False, True])
def test_the_memo_answers_for_its_shape_and_nothing_else(critical: bool) -> None:
    """After one plain chunk the memo holds its shape; what it must not take, each after a
    chunk of the memo's shape: a finish reason, usage, [DONE] or a quote in the content, the
    content being a key's name, CRLF, another id, an event line, an empty content."""
    plain = [_PLAIN % (b" tok%d" % i, b"null") for i in range(4)]
    native = _memo_stream_alike(plain, "auto", critical)
    assert native._memo is not None
    others = [
        _PLAIN % (b" tok", b'"stop"'),
        _PLAIN % (b" tok", b'"st"'),  # a tail of the memo's length, critical
        (_PLAIN % (b" tok", b"null")).replace(b'"finish_reason":null', b'"usage":{"a":123456}'),
        _PLAIN % (b'say \\"hi\\"', b"null"),
        _PLAIN % (b"usage", b"null"),
        _PLAIN % (b"type", b"null"),
        _PLAIN % (b"[DONE]", b"null"),
        _PLAIN % (b"", b"null"),
        _PLAIN % (b"x\ny", b"null"),
        _PLAIN % (b"x\\", b"null"),
        (_PLAIN % (b" tok", b"null"))[:-2] + b"\r\n\r\n",
        (_PLAIN % (b" tok", b"null")).replace(b"chatcmpl-1", b"chatcmpl-2"),
        (_PLAIN % (b" tok", b"null")).replace(b"null}]}", b'null}],"usage":{"total_tokens":3}}'),
        b"event: error\n" + _PLAIN % (b" tok", b"null"),
        b"id: 1\n" + _PLAIN % (b" tok", b"null"),
        _PLAIN % (b"data: [DONE]", b"null"),
    ]
    for other in others:
        _memo_stream_alike([plain[0], other, plain[1]], "auto", critical)
        _memo_stream_alike([plain[0], other, plain[1]], "openai", critical)


@needs_native
def test_setting_a_rule_field_forgets_the_memo() -> None:
    """The memo's answer holds for the fields it was learned under: setting fmt, a set or
    openai_chat forgets it (pending and fast are read before it and keep it)."""
    chunk = _PLAIN % (b" tok", b"null")
    changes: list[tuple[str, Any]] = [
        ("critical_names", frozenset({b"x"})),
        ("metadata", frozenset()),
        ("content_names", frozenset({b"delta"})),
        ("openai_chat", False),
        ("fmt", _table.FORMAT_LINES),
    ]
    for field, value in changes:
        native = _scan(_kernel.ScanBase, _table.FORMAT_SSE, "auto", False)
        python = _scan(PyScanBase, _table.FORMAT_SSE, "auto", False)
        assert native.classify(chunk) == _table.CONTENT
        assert native._memo is not None
        for scan in (native, python):
            setattr(scan, field, value)
        assert native._memo is None, field
        assert native.classify(chunk) == python.classify(chunk), field
    native = _scan(_kernel.ScanBase, _table.FORMAT_SSE, "auto", False)
    native.classify(chunk)
    native.pending, native.fast = 3, True
    assert native.classify(chunk) == _table.GENERAL
    native.pending = 0
    assert native._memo is not None and native.classify(chunk) == _table.CONTENT


@needs_native
def test_a_stream_whose_shape_keeps_changing_stops_learning() -> None:
    """Bytes outside the values that change in every chunk (a key per chunk: a value that
    changes, an id per chunk, is a hole of the memo) make the memo miss each time: after a
    few shapes the stream stops learning (and probing), and every answer is still the
    Python one's."""
    chunks = [(_PLAIN % (b" tok", b"null")).replace(b'"id"', b'"i%d"' % i) for i in range(20)]
    assert _memo_stream_alike(chunks[:1], "auto", True)._memo is not None
    native = _memo_stream_alike(chunks, "auto", True)
    assert native._memo is None


# Tails that turn a content string into a key: `"usage` + `":{...}` is a usage value,
# `"type` + `":"error"` a critical type, `"finish_reason` + `":"stop"` a finish.
_KEY_TAILS = (
    b'":"error","x":1}]}\n\n',
    b'":{"total_tokens":1}}]}\n\n',
    b'":"stop"}]}\n\n',
    b'":[{"index":0}]}]}\n\n',
    b'":"x"}]}\n\n',
)
_DANGEROUS = (
    b"type",
    b"usage",
    b"finish_reason",
    b"tool_calls",
    b"content",
    b"chat.completion.chunk",
    b'x","finish_reason":"stop',
    b'x","usage":{"total_tokens":1},"y":"',
    b'x","type":"error',
    b"[DONE]",
    b"a [DONE] b",
    b"",
    b"x\n\ndata: y",
    b"x\ry",
    b"ping",
    b"tok",
)


@needs_native
@pytest.mark.parametrize("critical", [False, True])
@pytest.mark.parametrize("preset", ["auto", "openai"])
def test_no_content_string_fakes_the_structure_after_the_memo_learned(
    critical: bool, preset: str
) -> None:
    """Every dangerous string after a plain chunk of the same head and tail, for tails that
    make a key of a string that is a key's name, and for the plain tails."""
    head = b'data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"'
    for tail in (*_KEY_TAILS, *_TAILS):
        for content in _DANGEROUS:
            native = _memo_stream_alike(
                [head + b"tok" + tail, head + content + tail, head + b"tik" + tail],
                preset,
                critical,
            )
            if tail in _KEY_TAILS[:1] or tail == _TAILS[0]:
                assert native._memo is not None, tail


@needs_native
def test_the_memo_is_not_learned_where_the_string_is_a_name_or_the_only_data() -> None:
    """A "content" string on an event line is part of that event's name, and one without a
    "data:" before it may be the event's only data: such chunks are not learned, and the
    next chunk of that shape is answered by the walk."""
    python = _scan(PyScanBase, _table.FORMAT_SSE, "auto", True)
    for metadata, chunks in (
        (
            frozenset({b'{"content":"ping"}'}),
            [
                b'data: {"object":"chat.completion.chunk","delta":{"tool_calls":[1]}}\n'
                b'event: {"content":"' + text + b'"}\n\n'
                for text in (b"tok", b"ping", b"tok")
            ],
        ),
        (
            frozenset(),
            [
                b'{"object":"chat.completion.chunk","delta":{"content":"' + text + b'"}}\n\n'
                for text in (b"data: x", b"x", b"data: y")
            ],
        ),
    ):
        native = _scan(_kernel.ScanBase, _table.FORMAT_SSE, "auto", True)
        native.metadata = python.metadata = metadata
        for chunk in chunks:
            assert native.classify(chunk) == python.classify(chunk), chunk
            assert native._memo is None, chunk
