"""WebSocket batching (opt-in with ``CoalesceConfig(websocket=True)``).

The JSON text messages an app sends within one window reach the client as ONE text message
holding a JSON array of them, in order; every batch is an array, even a batch of one and
even of a scalar (``send_json("scalar")`` arrives as ``["scalar"]``), so clients read
``for item in json.loads(message)``. A message whose JSON ``"type"`` is in
``critical_events`` goes out at once together with the batch before it. A batch is capped at
``max_events`` messages and ``max_bytes`` bytes. Anything else the app sends (binary, text
that is not JSON, close) goes out as it is, after the buffered batch.

``WebSocketBatcher`` is the send side only: ``_wsconn.WebSocketConnection`` decides per
connection whether to batch (at the accept, once the route is known) and calls ``finish``.
"""

from __future__ import annotations

import contextlib

import orjson

from ._config import CoalesceConfig
from ._stream import Coalescer
from ._types import Message, Send


class WebSocketBatcher:
    """Batches one connection's JSON text messages into arrays sent through ``send``."""

    __slots__ = ("_coalescer", "_config", "_critical", "_send")

    def __init__(self, config: CoalesceConfig, send: Send) -> None:
        self._config = config
        self._send = send
        self._critical = config.critical_events
        self._coalescer: Coalescer | None = None

    async def finish(self, completed: bool) -> None:
        """The app returned (``completed``) or failed: deliver what waits, then stop."""
        coalescer = self._coalescer
        if coalescer is None:
            return
        try:
            if completed and coalescer.error is None:
                with contextlib.suppress(OSError):  # the client left: nothing to deliver
                    await coalescer.drain()
        finally:
            coalescer.close()

    async def send(self, message: Message) -> None:
        text = message.get("text") if message["type"] == "websocket.send" else None
        if text is not None and message.get("bytes") is None:
            parsed, item = _json(text)
            if parsed:
                coalescer = self._coalescer
                if coalescer is None:
                    coalescer = self._coalescer = Coalescer(self._write, self._config, eager=False)
                if coalescer.error is not None:
                    raise coalescer.error
                data = text.encode()
                kind = item.get("type") if isinstance(item, dict) else None
                critical = isinstance(kind, str) and kind in self._critical
                code = coalescer.offer(data, len(data), 1, 1, critical)
                if code:
                    await coalescer.settle(code)
                return
        if self._coalescer is not None and self._coalescer.error is None:
            await self._coalescer.drain()
        await self._send(message)

    async def _write(self, parts: list[bytes], content: int, more: bool) -> None:
        # The flusher may find more than one batch waiting (the app did not yield): keep
        # each array within the caps.
        max_events, max_bytes = self._config.max_events, self._config.max_bytes
        batch: list[bytes] = []
        size = 1  # the array's bytes so far: "[", then each item with its "," or "]"
        for part in parts:
            if batch and (len(batch) == max_events or size + len(part) + 1 > max_bytes):
                await self._send_array(batch)
                batch, size = [], 1
            batch.append(part)
            size += len(part) + 1
        if batch:
            await self._send_array(batch)

    async def _send_array(self, items: list[bytes]) -> None:
        text = (b"[" + b",".join(items) + b"]").decode()
        await self._send({"type": "websocket.send", "text": text})


def _json(text: str) -> tuple[bool, object]:
    """``(True, value)`` when ``text`` is one JSON value (any: object, array, scalar), else
    ``(False, None)``: such text is sent unbatched, as the app sent it."""
    try:
        item: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None
    return True, item
