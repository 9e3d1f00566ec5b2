"""How the kernel reads a body message in direct mode, C and Python alike (issue 13).

The C sender reads Starlette's three-key message literal by walking its entries (its keys are
interned code constants, like the kernel's) and falls back to dict lookups for anything else;
the type string is matched by identity once one equal to "http.response.body" was seen. These
tests send the same chunk in every dict shape an app could build and check which path took it:
a chunk the kernel takes never reaches the Python ``general`` send; every other one does, and
the server receives the same messages either way. The default clock (``time.perf_counter``)
is read in C without calling it; its readings must be perf_counter's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from streamboost import StreamBoost
from streamboost._stream import NATIVE, HTTPStream, _kernel
from streamboost._stream._kernel import PySender

KERNELS = [pytest.param(PySender, id="python")]
if NATIVE:
    KERNELS.append(pytest.param(_kernel.Sender, id="c"))

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
CHUNK = b'data: {"token": "hi"}\n\n'
BODY_TYPE = "http.response.body"


def _fresh(text: str) -> str:
    """An equal string that is another object (not the interned constant)."""
    fresh = "".join([text[:1], text[1:]])
    assert fresh == text and fresh is not text
    return fresh


def _with_deleted_entry() -> dict[str, Any]:
    """The literal's three keys in a dict whose entry table also holds a deleted entry."""
    message: dict[str, Any] = {"x": 0, "type": BODY_TYPE, "body": CHUNK, "more_body": True}
    del message["x"]
    return message


def _split_table() -> dict[str, Any]:
    """The literal's keys and values in an instance ``__dict__`` (a split table in 3.11)."""

    class Message:
        def __init__(self) -> None:
            self.type, self.body, self.more_body = BODY_TYPE, CHUNK, True

    return Message().__dict__


# (id, message, taken by the kernel)
# A message, or a function making one where a copy would lose how its dict is laid out.
Shape = dict[str, Any] | Callable[[], dict[str, Any]]
SHAPES: list[tuple[str, Shape, bool]] = [
    ("literal", {"type": BODY_TYPE, "body": CHUNK, "more_body": True}, True),
    ("reordered", {"more_body": True, "body": CHUNK, "type": BODY_TYPE}, True),
    ("fresh type value", {"type": _fresh(BODY_TYPE), "body": CHUNK, "more_body": True}, True),
    (
        "fresh keys",
        {_fresh("type"): BODY_TYPE, _fresh("body"): CHUNK, _fresh("more_body"): True},
        True,
    ),
    ("extra key", {"type": BODY_TYPE, "body": CHUNK, "more_body": True, "x": 1}, True),
    ("deleted entry", _with_deleted_entry, True),
    ("instance dict", _split_table, True),
    ("no more_body, other key", {"type": BODY_TYPE, "body": CHUNK, "x": True}, False),
    ("more_body false", {"type": BODY_TYPE, "body": CHUNK, "more_body": False}, False),
    ("more_body truthy", {"type": BODY_TYPE, "body": CHUNK, "more_body": 1}, False),
    ("other type", {"type": "http.response.trailers", "body": CHUNK, "more_body": True}, False),
    ("bytes type", {"type": BODY_TYPE.encode(), "body": CHUNK, "more_body": True}, False),
    ("empty body", {"type": BODY_TYPE, "body": b"", "more_body": True}, False),
    ("bytearray body", {"type": BODY_TYPE, "body": bytearray(CHUNK), "more_body": True}, False),
    ("no body", {"type": BODY_TYPE, "more_body": True}, False),
]

Message = MutableMapping[str, Any]
Kernel = Callable[[Callable[[Any], Awaitable[None]]], Any]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _direct(
    kernel: Kernel, clock: Callable[[], float] | None
) -> tuple[HTTPStream, list[Message], list[Message]]:
    """A direct-mode stream past its start; the server's messages and the general send's."""
    server: list[Message] = []
    general: list[Message] = []

    async def server_send(message: Message) -> None:
        server.append(message)

    boost = StreamBoost(_app, coalesce=False, metrics=False, otel=False, clock=clock)
    stream = HTTPStream(boost.responses, dict(SCOPE), _receive, server_send, kernel=kernel)
    await stream.kernel.send(dict(START))
    forward = stream.kernel.general
    assert forward is not None

    def spy(message: Message) -> Awaitable[None]:
        general.append(message)
        return forward(message)

    stream.kernel.general = spy
    return stream, server, general


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("message", "taken"),
    [pytest.param(message, taken, id=name) for name, message, taken in SHAPES],
)
async def test_which_body_messages_the_kernel_takes(
    kernel: Kernel, message: Shape, taken: bool
) -> None:
    ticks = iter(range(1, 1000))
    stream, server, general = await _direct(kernel, lambda: float(next(ticks)))
    before = stream.record.chunks_in
    # Twice: the first may teach the C sender the type string; the second must use it.
    for _ in range(2):
        try:
            await stream.kernel.send(message() if callable(message) else dict(message))
        except Exception:
            assert not taken  # a malformed message may be refused by the general path
    if taken:
        assert general == []
        assert stream.record.chunks_in == before + 2
        assert [m["body"] for m in server[1:]] == [CHUNK, CHUNK]
    else:
        assert len(general) >= 1
        assert all(m is not message for m in general)  # each call got its own copy


@pytest.mark.parametrize("kernel", KERNELS)
async def test_a_taken_message_reaches_the_server_as_the_app_built_it(kernel: Kernel) -> None:
    stream, server, general = await _direct(kernel, None)
    message = {"type": _fresh(BODY_TYPE), "body": CHUNK, "more_body": True}
    await stream.kernel.send(message)
    assert general == [] and server[-1] is message


@pytest.mark.parametrize("kernel", KERNELS)
async def test_the_default_clock_reads_perf_counter(kernel: Kernel) -> None:
    stream, _server, general = await _direct(kernel, None)  # None: time.perf_counter
    record = stream.record
    for _ in range(3):
        before = time.perf_counter()
        await stream.kernel.send({"type": BODY_TYPE, "body": CHUNK, "more_body": True})
        after = time.perf_counter()
        assert record.last_body_at is not None
        assert before <= record.last_body_at <= after
    assert general == []
    first, last = record.first_byte_at, record.last_body_at
    assert first is not None and last is not None and first <= last


LAST_SHAPES: list[tuple[str, dict[str, Any], bool]] = [
    ("literal", {"type": BODY_TYPE, "body": b"", "more_body": False}, True),
    ("type only", {"type": BODY_TYPE}, True),
    ("no more_body", {"type": BODY_TYPE, "body": b""}, True),
    ("fresh keys", {_fresh("type"): BODY_TYPE, _fresh("body"): b"", "more_body": False}, True),
    ("more_body true, no body", {"type": BODY_TYPE, "more_body": True}, False),
    ("last with bytes", {"type": BODY_TYPE, "body": CHUNK, "more_body": False}, False),
    ("more_body falsy", {"type": BODY_TYPE, "body": b"", "more_body": 0}, False),
    ("bytearray body", {"type": BODY_TYPE, "body": bytearray(), "more_body": False}, False),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("message", "taken"),
    [pytest.param(message, taken, id=name) for name, message, taken in LAST_SHAPES],
)
async def test_the_empty_last_message_is_counted_and_finishes_the_body(
    kernel: Kernel, message: dict[str, Any], taken: bool
) -> None:
    ticks = iter(range(1, 1000))
    stream, server, general = await _direct(kernel, lambda: float(next(ticks)))
    await stream.kernel.send({"type": BODY_TYPE, "body": CHUNK, "more_body": True})
    record = stream.record
    before = (record.chunks_in, record.writes, record.events, record.bytes_out)
    await stream.kernel.send(dict(message))
    assert server[-1] == message
    if taken:
        assert general == []
        assert stream._complete  # the owner was told: finishing() ran
        after = (record.chunks_in, record.writes, record.events, record.bytes_out)
        assert after == (before[0] + 1, before[1] + 1, before[2], before[3])
        assert record.last_body_at == record.app_at  # one clock reading for both
    else:
        assert general == [message]


@pytest.mark.parametrize("kernel", KERNELS)
async def test_an_unfinished_event_sends_the_last_message_through_the_scanner(
    kernel: Kernel,
) -> None:
    stream, _server, general = await _direct(kernel, None)
    await stream.kernel.send({"type": BODY_TYPE, "body": b'data: {"token"', "more_body": True})
    events = stream.record.events
    last = {"type": BODY_TYPE, "body": b"", "more_body": False}
    await stream.kernel.send(last)
    assert general[-1] == last  # the scanner ends the event it held
    assert stream.record.events == events + 1 and stream._complete


@pytest.mark.skipif(not NATIVE, reason="the C kernel is not built")
def test_the_c_kernel_reads_the_literal_from_the_entry_table_on_3_11() -> None:
    from streamboost._stream import _speedups  # type: ignore[attr-defined]

    on_3_11 = sys.version_info[:2] == (3, 11)
    assert bool(_speedups.ENTRIES_DIRECT) is on_3_11
