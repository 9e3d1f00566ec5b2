"""The C classify memo's two-string shape: OpenAI chat chunks as the API sends them today.

OpenAI pads every streamed chat chunk with an ``"obfuscation"`` string of random characters
whose length varies, after the ``"content"`` string: two strings that change from chunk to
chunk. After a one-string memo misses such a chunk, the memo learns the bytes around both
(head, the middle between them, tail) and answers a chunk with the same bytes there and two
plain strings (docs/architecture.md, "The classify memo"). The Python twin has no memo, so
every answer here is the C scanner's against the Python one's, as in test_kernel_memo.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_kernel_memo import _STRINGS, _alike, _pair
from tests.test_kernel_walk import needs_native

from streamboost._stream import _table
from streamboost._stream._presets import PRESETS

SSE, LINES = _table.FORMAT_SSE, _table.FORMAT_LINES
CONTENT, OTHER, GENERAL = _table.CONTENT, _table.OTHER, _table.GENERAL

_HEAD = (
    b'data: {"id":"chatcmpl-CmP2x7","object":"chat.completion.chunk","created":1764700000,'
    b'"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_51db84afab",'
    b'"choices":[{"index":0,"delta":{"content":"'
)
_MIDDLE = b'"},"logprobs":null,"finish_reason":null}],"obfuscation":"'
_TAIL = b'"}\n\n'
# Heads, middles and tails a stream may switch to: usage on every chunk (include_usage),
# a finish reason, a critical type, a second event, a CR, the role before the content.
_HEADS = (
    _HEAD,
    _HEAD.replace(b'"service_tier":"default",', b""),
    _HEAD.replace(b'{"content":"', b'{"role":"assistant","content":"'),
    _HEAD.replace(b"data: ", b"id: 3\ndata: "),
    b'{"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"',
)
_MIDDLES = (
    _MIDDLE,
    b'"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"',
    b'"},"logprobs":null,"finish_reason":"stop"}],"obfuscation":"',
    b'"},"finish_reason":null}],"usage":{"total_tokens":3},"obfuscation":"',
    b'"},"type":"error","obfuscation":"',
    b'"}}]}\n\ndata: {"obfuscation":"',
    b'"}}]}\r\n\r\ndata: {"obfuscation":"',
    b'"},"logprobs":null,"finish_reason":null}],"obfuscation" : "',
)
_TAILS = (_TAIL, b'"}\r\n\r\n', b'","usage":{"n":1}}\n\n', b'","type":"error"}\n\n', b'"}\n')
_PADS = st.one_of(
    st.text(alphabet="abcXYZ0189", min_size=0, max_size=16).map(str.encode),
    st.sampled_from([b"[DONE]", b"usage", b"type", b'\\"', b"x\\", b"a\nb", b"a\rb", b"[x"]),
)


@needs_native
@settings(max_examples=500, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            _STRINGS,
            _PADS,
            st.one_of(st.none(), st.sampled_from(_HEADS)),
            st.one_of(st.none(), st.sampled_from(_MIDDLES)),
            st.one_of(st.none(), st.sampled_from(_TAILS)),
        ),
        min_size=1,
        max_size=14,
    ),
    preset=st.sampled_from(sorted(PRESETS)),
    critical=st.booleans(),
)
def test_chunks_with_content_and_obfuscation_are_classified_alike(
    steps: list[tuple[bytes, bytes, bytes | None, bytes | None, bytes | None]],
    preset: str,
    critical: bool,
) -> None:
    """Consecutive chunks mostly keep the head, middle and tail of the one before (None) and
    change both strings (quotes, backslashes, line ends, [DONE], key names in either),
    sometimes a head, a middle or a tail."""
    pair = _pair(preset, critical, SSE)
    head, middle, tail = _HEAD, _MIDDLE, _TAIL
    for content, pad, new_head, new_middle, new_tail in steps:
        head, middle, tail = new_head or head, new_middle or middle, new_tail or tail
        _alike(pair, head + content + middle + pad + tail)


def _live(content: bytes, pad: bytes, middle: bytes = _MIDDLE) -> bytes:
    return _HEAD + content + middle + pad + _TAIL


@needs_native
@pytest.mark.parametrize("preset", ["auto", "openai", "plain"])
@pytest.mark.parametrize("critical", [False, True])
def test_a_live_openai_stream_reaches_the_two_string_memo(preset: str, critical: bool) -> None:
    """The first content chunk teaches the one-string shape (around the obfuscation); the
    second, whose content has another length, misses it and teaches the two-string one, which
    the rest of the stream keeps: contents and pads of every length change nothing."""
    pair = _pair(preset, critical, SSE)
    assert _alike(pair, _live(b" Hello", b"Zk3p")) == CONTENT
    first = pair[0]._memo
    assert first is not None and first[1] == 0
    assert _alike(pair, _live(b",", b"Zk3pQ9xW")) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[0] == len(_HEAD) and memo[1] == len(_MIDDLE), memo
    assert memo[2] == len(_TAIL)
    for i in range(1, 40):
        assert _alike(pair, _live(b" tok" * (i % 5 + 1), b"Zk3pQ9xWmT2vLr8Y"[: i % 16 + 1])) == (
            CONTENT
        )
        assert pair[0]._memo == memo


_THREE = 3 << _table.EVENTS_SHIFT | 2  # three whole events, a comment between two contents


def _same_length(middle: bytes) -> bytes:
    """`middle` padded with spaces (JSON whitespace) after its first key to _MIDDLE's length,
    so that only the digest tells it from the learned one."""
    assert len(middle) <= len(_MIDDLE), middle
    at = middle.index(b",") + 1
    return middle[:at] + b" " * (len(_MIDDLE) - len(middle)) + middle[at:]


@needs_native
@pytest.mark.parametrize(
    ("critical", "middle", "answer"),
    [
        (False, b'"},"usage":{"total_tokens":3}}],"obfuscation":"', GENERAL),
        (True, b'"},"usage":{"total_tokens":3}}],"obfuscation":"', GENERAL),
        (True, b'"},"type":"error"}],"obfuscation":"', GENERAL),
        (False, b'"},"x":1}]}\r\n\r\ndata: {"obfuscation":"', GENERAL),
        (False, b'"},"x":1}]}\n\n: ping\n\ndata: {"obfuscation":"', _THREE),
        (False, b'"},"finish_reason":"stop"}],"obfuscation":"', CONTENT),
    ],
)
def test_a_two_string_memo_does_not_answer_for_another_middle(
    critical: bool, middle: bytes, answer: int
) -> None:
    """A middle of the learned length whose bytes differ (a usage, a critical type, a CR,
    more events) gets the walk's answer, and the learned shape still answers after."""
    pair = _pair("auto", critical, SSE)
    for content in (b"a", b"bb"):
        assert _alike(pair, _live(content, b"xyz")) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[1] == len(_MIDDLE)
    assert _alike(pair, _live(b"ccc", b"q", _same_length(middle))) == answer
    assert _alike(pair, _live(b"dddd", b"qq")) == CONTENT


@needs_native
@pytest.mark.parametrize(
    ("content", "pad"),
    [
        (b'say \\"hi\\"', b"xyz"),  # an escaped quote in the content: its first quote
        (b"a\\", b"xyz"),  # a backslash before the closing quote
        (b"", b"xyz"),  # no content
        (b"[DONE]", b"xyz"),
        (b"usage", b"xyz"),  # a key's name as the content
        (b"a", b""),  # no padding
        (b"a", b"[DONE]"),
        (b"a", b"finish_reason"),
        (b"a", b'\\"'),
        (b"x\ry", b"xyz"),
    ],
)
def test_a_two_string_memo_answers_as_the_walk_and_stays(content: bytes, pad: bytes) -> None:
    """Strings the memo refuses or answers (quotes, backslashes, names, [DONE], empty ones)
    get the walk's answer, and a chunk whose first string is not plain does not replace the
    two-string memo: the next ordinary chunk is its again."""
    for critical in (False, True):
        pair = _pair("auto", critical, SSE)
        for first in (b"a", b"bb"):
            assert _alike(pair, _live(first, b"xyz")) == CONTENT
        memo = pair[0]._memo
        assert memo is not None and memo[1] == len(_MIDDLE)
        _alike(pair, _live(content, pad))
        assert _alike(pair, _live(b"ccc", b"q")) == CONTENT
        assert pair[0]._memo == memo


@needs_native
def test_every_byte_of_the_middle_is_in_the_digest() -> None:
    """A space anywhere in a padded middle turned into a CR (which makes the chunk GENERAL,
    the lengths unchanged) is refused: each of the middle's bytes reaches the digest."""
    padded = _same_length(b'"},"x":1}],"obfuscation":"')
    spaces = [at for at, byte in enumerate(padded) if byte == ord(" ")]
    assert len(spaces) > 16
    for at in spaces:
        pair = _pair("plain", False, SSE)
        for content in (b"a", b"bb"):
            assert _alike(pair, _live(content, b"xyz", padded)) == CONTENT
        assert pair[0]._memo is not None and pair[0]._memo[1] == len(padded)
        broken = padded[:at] + b"\r" + padded[at + 1 :]
        assert _alike(pair, _live(b"ccc", b"q", broken)) == GENERAL


@needs_native
@pytest.mark.parametrize("critical", [False, True])
def test_a_first_string_that_a_middle_makes_a_key_is_refused_by_its_name(critical: bool) -> None:
    """Where the middle starts with a colon the first string is a key: learned from a name
    that is no key's, the memo must refuse a key's name there ("usage" with a value)."""
    middle = b'":{"total_tokens":1},"obfuscation":"'
    pair = _pair("auto", critical, SSE)
    for content in (b"a", b"bb"):
        assert _alike(pair, _live(content, b"xyz", middle)) == CONTENT
    memo = pair[0]._memo
    assert memo is not None and memo[1] == len(middle)
    assert _alike(pair, _live(b"usage", b"xyz", middle)) == GENERAL
