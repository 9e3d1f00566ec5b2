"""The example chat backend: ``create_app(ChatSettings(mode=...))``.

``POST /chat/stream`` with ``{"user_id", "session_id", "message"}`` streams the answer as
OpenAI-shaped SSE ending with ``data: [DONE]``.

- naive mode: load profile, load history, retrieve, create the session and save the user's
  message one after another, then stream one write per token, then save the answer inline.
- boosted mode: the same work done with streamboost's tools (see ``boosted_prestream``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from streamboost import Cache, StreamBoost, cached, defer, gather_phases

from ._backend import Backend, Message, Profile
from ._model import generate
from ._settings import ChatSettings
from ._store import ChatWrites


class ChatRequest(BaseModel):
    user_id: str = "u1"
    session_id: str = "s1"
    message: str = "How does streaming work?"


def _prompt(profile: Profile, history: list[Message], docs: list[str], message: str) -> str:
    context = " ".join(docs)
    return f"{profile.name}|{len(history)}|{context}|{message}"


async def naive_prestream(backend: Backend, settings: ChatSettings, req: ChatRequest) -> str:
    profile = await backend.load_profile(req.user_id)
    history = await backend.load_history(req.session_id)
    docs = await backend.retrieve(req.message) if settings.retrieval else []
    await backend.blocking(backend.create_session(req.user_id, req.session_id))
    await backend.blocking(backend.save_message(req.session_id, "user", req.message))
    return _prompt(profile, history, docs, req.message)


async def _no_docs() -> list[str]:
    return []


async def boosted_prestream(
    backend: Backend, settings: ChatSettings, req: ChatRequest, writes: ChatWrites | None = None
) -> str:
    # The three loads run at once, each timed as a phase of the request's TTFT; retrieval
    # degrades to no context instead of failing the answer.
    profile, history, docs = await gather_phases(
        profile=backend.load_profile(req.user_id),
        history=backend.load_history(req.session_id),
        rag=backend.retrieve(req.message) if settings.retrieval else _no_docs(),
        timeouts={"rag": 2.0},
        fallbacks={"rag": []},
    )
    # Deferred writes: off the path to the first token, drained at shutdown.
    defer(backend.create_session, req.user_id, req.session_id)
    defer(backend.save_message, req.session_id, "user", req.message)
    if writes is not None and writes.active:
        row = {"session_id": req.session_id, "role": "user", "content": req.message}
        await writes.messages.put(row)
    return _prompt(profile, history, docs, req.message)


def cache_loaders(backend: Backend, cache: Cache) -> None:
    """Boosted mode: profile (per user) and history (per session) are served from ``cache``.

    The backend's own methods are replaced, so every caller of ``backend.load_profile`` and
    ``backend.load_history`` gets the cached version, and every ``backend.save_message``
    reloads the session's history into the cache once the message is saved (write-through,
    off the request path): the next turn finds it warm and current.
    """
    profile = cached(ttl=300, stale_ttl=60, cache=cache, name="chat.profile")
    history = cached(ttl=30, cache=cache, name="chat.history")
    backend.load_profile = profile(backend.load_profile)  # type: ignore[method-assign]
    load_history = history(backend.load_history)
    backend.load_history = load_history  # type: ignore[method-assign]
    save_message = backend.save_message

    async def save_and_refresh(session_id: str, role: str, content: str) -> None:
        await save_message(session_id, role, content)
        # After the save, not before: a load between the two would cache the old history.
        # A job of its own, so a Redis error retries the refresh, not the save. A refresh
        # rather than an invalidation: the next turn of a chat must not wait for the load.
        defer(load_history.refresh, session_id)

    backend.save_message = save_and_refresh  # type: ignore[method-assign]


def _resources(writes: ChatWrites, cache: Cache) -> Any:
    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        await writes.store.open()
        try:
            yield
        finally:
            await writes.store.close()
            await cache.aclose()

    return lifespan


def create_app(
    settings: ChatSettings | None = None,
    backend: Backend | None = None,
    writes: ChatWrites | None = None,
    *,
    cache: Cache | None = None,
    registry: CollectorRegistry | None = None,
) -> Any:
    """Build the FastAPI app for ``settings`` (default: read from the environment).

    Boosted mode caches with ``cache`` (default ``STREAMBOOST_CACHE_URL``, else memory://),
    persists to ``writes`` (default: ``ChatWrites()``, see ``_store.py``) and is
    wrapped in ``StreamBoost``, exporting to ``registry`` (default: prometheus_client's).
    """
    settings = settings or ChatSettings.from_env()
    backend = backend or Backend(latencies=settings.latencies)
    if settings.mode == "naive":
        app = FastAPI(title="streamboost example chat (naive)")
    else:
        writes = writes or ChatWrites(registry=registry)
        cache = cache or Cache.from_url(
            namespace="streamboost-chat", name="chat", registry=registry
        )
        cache_loaders(backend, cache)
        app = FastAPI(
            title="streamboost example chat (boosted)", lifespan=_resources(writes, cache)
        )
    app.state.writes = writes
    app.state.cache = cache
    app.state.settings = settings
    app.state.backend = backend

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "mode": settings.mode}

    @app.post("/chat/stream")
    async def chat_stream(req: ChatRequest) -> StreamingResponse:
        if settings.mode == "naive":
            prompt = await naive_prestream(backend, settings, req)
        else:
            prompt = await boosted_prestream(backend, settings, req, writes)

        async def body() -> AsyncIterator[bytes]:
            answer: list[bytes] = []
            events = generate(
                prompt,
                ttft=settings.model_ttft,
                tokens_per_second=settings.tokens_per_second,
                max_tokens=settings.max_tokens,
            )
            if writes is not None and writes.active:
                events = writes.persist_answer(events, req.session_id)
            async for event in events:
                answer.append(event)
                yield event
            if settings.mode == "naive":
                await backend.blocking(
                    backend.save_message(req.session_id, "assistant", f"{len(answer)} events")
                )
            else:
                defer(backend.save_message, req.session_id, "assistant", f"{len(answer)} events")

        return StreamingResponse(body(), media_type="text/event-stream")

    if settings.mode == "boosted":
        # One pure-ASGI layer: coalesced writes, stream timing and /metrics; the message
        # writer starts after the app's startup and, with defer() work, drains before its
        # shutdown closes the store.
        assert writes is not None
        return StreamBoost(app, registry=registry, writers=[writes.messages])
    return app


def backend_of(app: Any) -> Backend:
    """The simulated backend of an app built by ``create_app`` (wrapped or not)."""
    while not hasattr(app, "state"):
        app = app.app  # ASGI middlewares keep the app they wrap as ``.app``
    backend: Backend = app.state.backend
    return backend
