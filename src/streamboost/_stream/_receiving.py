"""One ``receive()`` of the app: the server's, awaited, with a look at what it returns.

The pure-Python twin of the kernel's ``Receiving`` (``_speedups_c/receive.h``): the same steps
as a coroutine. A streaming app keeps one ``receive()`` pending for its whole stream to hear
the disconnect (Starlette's ``StreamingResponse``, sse-starlette), so the C twin is an object
with no frame: two slots instead of a coroutine's ~200 B per open stream.
"""

from __future__ import annotations

from typing import Protocol

from .._types import Message, Receive


class Listener(Protocol):
    """The response whose app receives: ``HTTPStream``."""

    server_receive: Receive

    def disconnected(self) -> None:
        """An ``http.disconnect`` came, before the app gets it."""


async def receiving(listener: Listener) -> Message:
    message = await listener.server_receive()
    if message["type"] == "http.disconnect":
        listener.disconnected()
    return message
