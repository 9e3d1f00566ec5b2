"""``StreamBoost(app, route=...)``: the app's own route templates as labels."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from streamboost import StreamBoost
from streamboost._types import Receive, Scope, Send


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    # A framework that routes on its own: it writes its template into the scope it was given.
    if scope["path"].startswith("/items/"):
        scope["my_template"] = "/items/<id>"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def route_lines(metrics: str) -> set[str]:
    found = set()
    for line in metrics.splitlines():
        if line.startswith("streamboost_http_requests_total{"):
            found.add(line.split('route="', 1)[1].split('"', 1)[0])
    return found


async def test_the_route_option_labels_by_template_and_falls_back_to_unmatched() -> None:
    calls: list[str] = []

    def route(scope: dict[str, Any]) -> str | None:
        calls.append(scope["path"])
        template: str | None = scope.get("my_template")
        return template

    app = StreamBoost(plain_app, route=route, registry=CollectorRegistry(), otel=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for n in range(3):
            assert (await client.get(f"/items/{n}")).text == "ok"
        await client.get("/elsewhere")
        metrics = (await client.get("/metrics")).text
    assert route_lines(metrics) == {"/items/<id>", "unmatched"}
    assert calls == ["/items/0", "/items/1", "/items/2", "/elsewhere"]  # once per response


def test_the_route_option_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"route='/x' must be a function \(scope: dict\)"):
        StreamBoost(plain_app, route="/x", metrics=False, otel=False)  # type: ignore[arg-type]
