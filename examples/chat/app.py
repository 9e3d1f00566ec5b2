"""The example chat backend: ``create_app(ChatSettings(mode=...))``.

``POST /chat/stream`` with ``{"user_id", "session_id", "message"}`` streams the answer as
OpenAI-shaped SSE ending with ``data: [DONE]``.

- naive mode: load profile, load history, retrieve, create the session and save the user's
  message one after another, then stream one write per token, then save the answer inline.
- boosted mode: the same work done with streamboost's tools (see ``boosted_prestream``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from streamboost import Cache, cached

from .backend import Backend, Message, Profile
from .model import generate
from .settings import ChatSettings


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
    await backend.create_session(req.user_id, req.session_id)
    await backend.save_message(req.session_id, "user", req.message)
    return _prompt(profile, history, docs, req.message)


async def boosted_prestream(backend: Backend, settings: ChatSettings, req: ChatRequest) -> str:
    # Grows with the cache, phases and deferred-write features; same work as naive for now.
    return await naive_prestream(backend, settings, req)


def cache_loaders(backend: Backend, cache: Cache) -> None:
    """Boosted mode: profile (per user) and history (per session) are served from ``cache``.

    The backend's own methods are replaced, so every caller of ``backend.load_profile`` and
    ``backend.load_history`` gets the cached version. A writer that changes a session's history
    drops its entry with ``await backend.load_history.invalidate(session_id)``.
    """
    profile = cached(ttl=300, stale_ttl=60, cache=cache, name="chat.profile")
    history = cached(ttl=30, cache=cache, name="chat.history")
    backend.load_profile = profile(backend.load_profile)  # type: ignore[method-assign]
    backend.load_history = history(backend.load_history)  # type: ignore[method-assign]


def create_app(
    settings: ChatSettings | None = None, backend: Backend | None = None, cache: Cache | None = None
) -> Any:
    """Build the FastAPI app for ``settings`` (default: read from the environment).

    Boosted mode caches with ``cache``, default ``STREAMBOOST_CACHE_URL`` (else memory://).
    """
    settings = settings or ChatSettings.from_env()
    backend = backend or Backend(latencies=settings.latencies)
    app = FastAPI(title=f"streamboost example chat ({settings.mode})")
    app.state.settings = settings
    app.state.backend = backend
    if settings.mode == "boosted":
        app.state.cache = cache or Cache.from_url(namespace="streamboost-chat", name="chat")
        cache_loaders(backend, app.state.cache)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "mode": settings.mode}

    @app.post("/chat/stream")
    async def chat_stream(req: ChatRequest) -> StreamingResponse:
        if settings.mode == "naive":
            prompt = await naive_prestream(backend, settings, req)
        else:
            prompt = await boosted_prestream(backend, settings, req)

        async def body() -> AsyncIterator[bytes]:
            answer: list[bytes] = []
            async for event in generate(
                prompt,
                ttft=settings.model_ttft,
                tokens_per_second=settings.tokens_per_second,
                max_tokens=settings.max_tokens,
            ):
                answer.append(event)
                yield event
            if settings.mode == "naive":
                await backend.save_message(req.session_id, "assistant", f"{len(answer)} events")

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


app = create_app()
