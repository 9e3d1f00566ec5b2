"""Route labels: templates after routing, mounts, root_path, unmatched, the series cap."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router
from tests.coalesce_apps import run_app
from tests.metrics_apps import asgi_scope, series, value

from streamboost import StreamBoost
from streamboost._export._route import (
    OTHER_METHOD,
    OTHER_STATUS,
    OVERFLOW,
    UNMATCHED,
    RouteResolver,
    SeriesCap,
    status_class,
)


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def nested_app() -> Starlette:
    inner = Router(routes=[Route("/items/{item_id}", ok)])
    sub = Starlette(routes=[Route("/deep/{x}", ok)])
    return Starlette(
        routes=[
            Route("/", ok),
            Route("/users/{user_id:int}", ok, methods=["GET"]),
            Mount("/api/{version}", routes=[Mount("/v", app=inner)]),
            Mount("/sub", app=sub),
            Mount("/static", app=PlainTextResponse("static")),
        ]
    )


async def routed_labels(app: Any, *paths: str, **scope: Any) -> list[str]:
    registry = CollectorRegistry()
    boosted = StreamBoost(app, registry=registry, otel=False, coalesce=False)
    for path in paths:
        await run_app(boosted, scope=asgi_scope(path, **scope))
    return sorted(dict(labels)["route"] for labels in series(registry, "streamboost_http_requests"))


async def test_templates_of_routes_and_nested_mounts() -> None:
    labels = await routed_labels(
        nested_app(),
        "/",
        "/users/7",
        "/users/8",
        "/api/v1/v/items/3",
        "/api/v2/v/items/4",
        "/sub/deep/9",
        "/static/css/a.css",
    )
    assert labels == [
        "/",
        "/api/{version}/v/items/{item_id}",
        "/static",
        "/sub/deep/{x}",
        "/users/{user_id:int}",
    ]


async def test_unmatched_and_method_not_allowed() -> None:
    registry = CollectorRegistry()
    boosted = StreamBoost(nested_app(), registry=registry, otel=False)
    await run_app(boosted, scope=asgi_scope("/nope/1"))
    await run_app(boosted, scope=asgi_scope("/users/1", method="DELETE"))
    await run_app(boosted, scope=asgi_scope("/users/1", method="BREW"))
    total = "streamboost_http_requests_total"
    assert value(registry, total, method="GET", route=UNMATCHED, status="404") == 1
    # A 405 belongs to the route that exists for other methods.
    assert value(registry, total, method="DELETE", route="/users/{user_id:int}", status="405") == 1
    assert value(registry, total, method=OTHER_METHOD, route="/users/{user_id:int}", status="405")


async def test_root_path_is_not_part_of_the_template() -> None:
    # uvicorn --root-path /proxy: the path carries the prefix, routing strips it.
    labels = await routed_labels(
        nested_app(), "/proxy/users/5", "/proxy/api/v9/v/items/1", root_path="/proxy"
    )
    assert labels == ["/api/{version}/v/items/{item_id}", "/users/{user_id:int}"]


async def test_fastapi_include_router_prefix() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/chats/{chat_id}")
    async def chat(chat_id: str) -> dict[str, str]:
        return {"id": chat_id}

    app.include_router(router)
    app.mount("/legacy", Starlette(routes=[Route("/ping/{n}", ok)]))
    labels = await routed_labels(app, "/v1/chats/a", "/v1/chats/b", "/legacy/ping/3")
    assert labels == ["/legacy/ping/{n}", "/v1/chats/{chat_id}"]


async def test_ten_thousand_random_paths_add_at_most_one_series() -> None:
    registry = CollectorRegistry()
    boosted = StreamBoost(nested_app(), registry=registry, otel=False)
    await run_app(boosted, scope=asgi_scope("/users/1"))
    families = ("streamboost_http_requests", "streamboost_time_to_first_byte_seconds")
    before = {family: series(registry, family) for family in families}
    assert all(before.values()), before  # the families exist: the check below is not vacuous
    rng = random.Random(7)
    for _ in range(10_000):
        path = "/x" + "".join(rng.choices(string.ascii_letters + "/", k=rng.randint(1, 30)))
        await run_app(boosted, scope=asgi_scope(path))
    for family, old in before.items():
        assert len(series(registry, family) - old) <= 1
    total = "streamboost_http_requests_total"
    assert value(registry, total, method="GET", route=UNMATCHED, status="404") == 10_000


async def test_series_cap_labels_new_routes_overflow() -> None:
    routes = [Route(f"/r{i}", ok) for i in range(6)]
    registry = CollectorRegistry()
    boosted = StreamBoost(Starlette(routes=routes), registry=registry, otel=False, max_series=3)
    for i in range(6):
        await run_app(boosted, scope=asgi_scope(f"/r{i}"))
    labels = sorted(dict(s)["route"] for s in series(registry, "streamboost_http_requests"))
    assert labels == sorted([OVERFLOW, "/r0", "/r1", "/r2"])
    total = "streamboost_http_requests_total"
    # Overflow collapses the status to its class too, so statuses cannot add series.
    assert value(registry, total, method="GET", route=OVERFLOW, status="2xx") == 3


def test_series_cap_rejects_a_bad_size() -> None:
    with pytest.raises(ValueError, match="max_series=0"):
        SeriesCap(0)


def test_status_class_of_every_status() -> None:
    assert [status_class(s) for s in (100, 199, 200, 404, 499, 500, 599)] == [
        *("1xx", "1xx", "2xx", "4xx", "4xx", "5xx", "5xx")
    ]
    assert {status_class(s) for s in (0, 99, 600, 999, -1)} == {OTHER_STATUS}


def test_resolver_without_router_falls_back_to_unmatched_or_the_route_path() -> None:
    resolve = RouteResolver()
    assert resolve({"path": "/x"}) == UNMATCHED
    route = Route("/custom/{id}", ok)
    assert resolve({"route": route}) == "/custom/{id}"
