"""The example chat app's boosted mode defers its writes and persists the answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import orjson
import pytest
from examples.chat.app import backend_of, create_app
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, PostgresStore, SQLiteStore, open_store
from prometheus_client import CollectorRegistry
from tests.deferred.support import PgTable

from streamboost._cli._loopback import uvicorn_in_thread

FAST = Latencies(0.001, 0.001, 0.001, 0.001, 0.001)
SETTINGS = ChatSettings(
    mode="boosted", model_ttft=0.01, tokens_per_second=1000, max_tokens=40, latencies=FAST
)


def answer_text(body: str) -> str:
    text = ""
    for event in body.split("\n\n"):
        if event.startswith("data: {"):
            for choice in orjson.loads(event[6:])["choices"]:  # none in the usage chunk
                text += choice["delta"].get("content") or ""
    return text


def test_boosted_mode_persists_messages_and_the_streamed_answer_in_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "chat.sqlite3"))
    writes = ChatWrites(store, max_delay=0.01, registry=CollectorRegistry())
    app = create_app(SETTINGS, writes=writes)
    with uvicorn_in_thread(app) as url:
        response = httpx.post(
            url + "/chat/stream", json={"session_id": "s9", "message": "hi"}, timeout=10
        )
        streamed = answer_text(response.text)
    assert len(streamed.split()) == 40
    # The server has shut down: the writer and every deferred job were drained.
    calls = backend_of(app).calls
    assert calls["create_session"] == 1 and calls["save_message"] == 2
    with sqlite3.connect(store.path) as db:
        rows = sorted(db.execute(f"SELECT session_id, role, content FROM {store.table}"))
    assert rows == [("s9", "assistant", streamed), ("s9", "user", "hi")]


async def test_postgres_store_batches_and_upserts(pg_table: PgTable) -> None:
    await pg_table.pool.execute(f"DROP TABLE {pg_table.name}")  # the store creates its own
    store = PostgresStore(pg_table.dsn, table=pg_table.name)
    writes = ChatWrites(store, max_delay=0.01, registry=CollectorRegistry())
    async with writes.lifespan(None):
        for n in range(300):
            await writes.messages.put({"session_id": "s", "role": "user", "content": str(n)})

        async def events():  # type: ignore[no-untyped-def]
            for word in ("a ", "b ", "c"):
                chunk = {"choices": [{"delta": {"content": word}}]}
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"

        async for _ in writes.persist_answer(events(), "s"):
            pass
    rows = await pg_table.pool.fetch(f"SELECT role, content FROM {pg_table.name}")
    assert sorted(int(r["content"]) for r in rows if r["role"] == "user") == list(range(300))
    assert [r["content"] for r in rows if r["role"] == "assistant"] == ["a b c"]


async def test_boosted_mode_with_chat_database_url_persists_in_postgres(
    pg_table: PgTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg_table.pool.execute(f"DROP TABLE {pg_table.name}")  # the store creates its own
    monkeypatch.setenv("CHAT_DATABASE_URL", pg_table.dsn)
    store = open_store(table=pg_table.name)  # the app's own choice, from the environment
    assert isinstance(store, PostgresStore)
    writes = ChatWrites(store, max_delay=0.01, registry=CollectorRegistry())
    app = create_app(SETTINGS, writes=writes, registry=CollectorRegistry())
    answers = []
    with uvicorn_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for n in range(3):
                body = {"session_id": "pg", "message": f"question {n}"}
                answers.append(answer_text((await client.post("/chat/stream", json=body)).text))
    # The server has shut down: the writer and the answers' last deltas were drained.
    assert all(len(answer.split()) == 40 for answer in answers)
    records = await pg_table.pool.fetch(f"SELECT session_id, role, content FROM {pg_table.name}")
    assert sorted(tuple(r) for r in records) == sorted(
        [("pg", "user", f"question {n}") for n in range(3)]
        + [("pg", "assistant", answer) for answer in answers]
    )
