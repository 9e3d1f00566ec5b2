"""The example chat app streams OpenAI-shaped SSE from a real uvicorn."""

from __future__ import annotations

import httpx
import orjson
from examples.chat.app import create_app
from examples.chat.settings import ChatSettings, Latencies

from streamboost._cli._loopback import uvicorn_in_thread

FAST = Latencies(0.001, 0.001, 0.001, 0.001, 0.001)


def test_naive_stream_is_openai_shaped_and_ends_with_done() -> None:
    settings = ChatSettings(
        mode="naive", model_ttft=0.01, tokens_per_second=1000, max_tokens=5, latencies=FAST
    )
    app = create_app(settings)
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/chat/stream", json={"user_id": "a", "session_id": "s"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    *chunks, usage = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    # The last chunk before [DONE] is usage only, as OpenAI sends it with include_usage.
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) == 5
    calls = app.state.backend.calls
    assert calls["load_profile"] == 1 and calls["save_message"] == 2
