"""A one-file Django site for the plugin's tests: served as ``django_site:application``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="streamboost-test",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=["streamboost_django.middleware"],
)
django.setup()

import streamboost_django  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, StreamingHttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402

from streamboost import StreamBoost, defer  # noqa: E402

TOKENS = 20
DEFERRED = Path(os.environ.get("DEFERRED_FILE", os.devnull))


def record(room: int) -> None:
    time.sleep(0.3)  # still pending when the server is told to stop (defer runs it in a thread)
    with DEFERRED.open("a") as out:
        out.write(f"room {room}\n")


async def chat(request: HttpRequest, room: int) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[bytes]:
        for n in range(TOKENS):
            await asyncio.sleep(0)
            yield f"data: token {n}\n\n".encode()
        yield b"data: [DONE]\n\n"

    defer(record, room)
    return StreamingHttpResponse(events(), content_type="text/event-stream")


def buffered(request: HttpRequest, name: str) -> StreamingHttpResponse:
    def events() -> Iterator[bytes]:
        for n in range(3):
            yield f"data: {name} {n}\n\n".encode()

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [
    path("api/", include([path("chat/<int:room>/stream", chat)])),
    path("sync/<slug:name>", buffered, name="buffered"),
]

application = StreamBoost(get_asgi_application(), route=streamboost_django.route, otel=False)
