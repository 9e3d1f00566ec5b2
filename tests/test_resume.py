"""Resumable SSE streams on real Redis, two real uvicorn processes and real httpx clients.

What "exactly the bytes of an uninterrupted stream" means here: a client keeps the event
blocks it received whole (a browser drops an unfinished event too), removes the ``id:`` lines
StreamBoost stamped, and leaves out comment-only blocks and ``ping`` events (control frames:
never stamped, never logged, so a resume does not replay them); what remains must equal the
app's body with the same blocks left out, byte for byte. The uninterrupted stream itself,
id lines removed, is the app's body exactly.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from tests.needs import free_port, scratch_prefix

from metrics_apps import server_process
from resume_apps import expected
from streamboost import ResumeConfig
from streamboost._resume._stamp import Stamper

ID_LINE = re.compile(rb"^id: ([0-9a-f]{32})-([0-9]+)$")


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    async with scratch_prefix(redis_url, "sbtest:resume:{}:") as name:
        yield name


def _command(port: int) -> list[str]:
    return [
        "uvicorn", "--factory", "tests.resume_apps:make_app",
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


def controls_out(body: bytes) -> bytes:
    blocks = body.split(b"\n\n")
    kept = [b for b in blocks[:-1] if not b.startswith((b":", b"event: ping"))]
    return b"".join(b + b"\n\n" for b in kept)


class Reader:
    """One client: reads, drops the connection at random points, resumes elsewhere."""

    def __init__(self, http: httpx.AsyncClient, bases: list[str], user: str) -> None:
        self.http, self.bases, self.user = http, bases, user
        self.got = b""
        self.last: str | None = None
        self.ids: list[tuple[bytes, int]] = []
        self.resumes = 0
        self.log: list[Any] = []

    def _take(self, buffer: bytes) -> None:
        for block in buffer.split(b"\n\n")[:-1]:  # whole blocks only
            lines = block.split(b"\n")
            for line in lines:
                if (match := ID_LINE.match(line)) is not None:
                    self.ids.append((match.group(1), int(match.group(2))))
                    self.last = line[4:].decode()
            kept = b"\n".join(line for line in lines if not line.startswith(b"id: "))
            if not kept.startswith((b":", b"event: ping")):
                self.got += kept + b"\n\n"

    async def read(self, query: str, rng: random.Random, cuts: int) -> None:
        for attempt in range(cuts + 20):
            headers = {"x-user": self.user}
            if self.last is not None:
                headers["last-event-id"] = self.last
                self.resumes += 1
            cut = rng.randint(1, 4000) if attempt < cuts else None
            buffer = b""
            base = self.bases[attempt % len(self.bases)]
            async with self.http.stream("GET", f"{base}/stream?{query}", headers=headers) as r:
                self.log.append((headers.get("last-event-id"), r.status_code, cut))
                if r.status_code == 204:
                    return
                assert r.status_code == 200, r.status_code
                async for chunk in r.aiter_raw():
                    buffer += chunk
                    if cut is not None and len(buffer) >= cut:
                        break
            self._take(buffer)
            if self.got.endswith(b"data: [DONE]\n\n"):
                return
        raise AssertionError(f"never finished: {self.got[-200:]!r}")


def test_stamping_across_any_split() -> None:
    body = (
        b": hi\n\ndata: 0\n\nevent: ping\ndata: {}\n\ndata: a\r\ndata: b\r\n\r\n"
        b"data: z\r\rdata: q\nid: app\n\n\nretry: 5\n\n"
    )
    whole, logged = Stamper(b"S", frozenset({b"ping"})).feed(body)
    assert whole == (
        b": hi\n\ndata: 0\nid: S-1\n\nevent: ping\ndata: {}\n\ndata: a\r\ndata: b\r\nid: S-2\r\n"
        b"\r\ndata: z\rid: S-3\r\n\rdata: q\nid: app\nid: S-4\n\n\nretry: 5\n\n"
    )
    assert b"".join(logged) == (
        b"data: 0\nid: S-1\n\ndata: a\r\ndata: b\r\nid: S-2\r\n\r\ndata: z\rid: S-3\r\n\r"
        b"data: q\nid: app\nid: S-4\n\n"
    )
    rng = random.Random(5)
    for _ in range(3000):
        stamper = Stamper(b"S", frozenset({b"ping"}))
        cuts = sorted(rng.sample(range(1, len(body)), rng.randint(0, 10)))
        outs: list[bytes] = []
        logs: list[bytes] = []
        for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
            out, log = stamper.feed(body[a:b])
            outs.append(out)
            logs.extend(log)
        assert b"".join(outs) == whole
        assert b"".join(logs) == b"".join(logged)


def _fed(pieces: list[bytes]) -> tuple[bytes, bytes]:
    stamper = Stamper(b"S", frozenset({b"ping"}))
    outs: list[bytes] = []
    logs: list[bytes] = []
    for piece in pieces:
        out, log = stamper.feed(piece)
        outs.append(out)
        logs.extend(log)
    return b"".join(outs), b"".join(logs)


def test_whole_lf_batches_stamp_as_any_split() -> None:
    """Batches of whole LF events (the one-split path) give the bytes that one byte at a time
    (the general scan) gives, with comments, pings, an app's id, blank-line runs among them."""
    events = [
        b'data: {"t": 1}\n\n',
        b": keepalive\n\n",
        b"event: ping\ndata: {}\n\n",
        b"data: a\ndata: b\n\n",
        b"id: app-7\ndata: x\n\n",
        b"event: delta\ndata: y\n\n",
        b"retry: 100\n\n",
        b"\n",
        b"data: after a blank line\n\n",
        b"data: [DONE]\n\n",
    ]
    rng = random.Random(11)
    for _ in range(300):
        chosen = [rng.choice(events) for _ in range(rng.randint(1, 12))]
        body = b"".join(chosen)
        reference = _fed([body[i : i + 1] for i in range(len(body))])
        assert _fed([body]) == reference
        groups: list[bytes] = []  # event-aligned batches, as a coalescer flushes them
        at = 0
        while at < len(chosen):
            size = rng.randint(1, 4)
            groups.append(b"".join(chosen[at : at + size]))
            at += size
        assert _fed(groups) == reference
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(0, 5))))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        assert _fed(pieces) == reference


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        ResumeConfig(redis_url="http://x", owner=lambda scope: "a")
    with pytest.raises(TypeError, match="owner"):
        ResumeConfig(redis_url="redis://127.0.0.1", owner="user")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="detach_timeout"):
        ResumeConfig(redis_url="redis://127.0.0.1", owner=lambda s: "a", detach_timeout=0)
    with pytest.raises(ValueError, match="paths"):
        ResumeConfig(redis_url="redis://127.0.0.1", owner=lambda s: "a", paths="/chat")  # type: ignore[arg-type]


async def test_200_streams_cut_and_resumed_across_two_processes(
    redis_url: str, prefix: str
) -> None:
    env = {"RESUME_REDIS_URL": redis_url, "RESUME_PREFIX": prefix}
    ports = [free_port(), free_port()]
    count = 40
    with (
        server_process(_command(ports[0]), ports[0], env) as one,
        server_process(_command(ports[1]), ports[1], env) as two,
    ):
        async with httpx.AsyncClient(timeout=30.0) as http:
            # Uninterrupted: the body with its id lines removed is the app's body, exactly.
            whole = await http.get(f"{one}/stream?n=0&count={count}", headers={"x-user": "a"})
            ids = [ID_LINE.match(line) for line in whole.content.split(b"\n")]
            seqs = [int(m.group(2)) for m in ids if m is not None]
            assert seqs == list(range(1, count + 2))  # every data event, pings and comments not
            unstamped = re.sub(rb"(?m)^id: [^\n]*\n", b"", whole.content)
            app_body = b": a comment, never stamped\n\n" + expected(0, count)
            app_body = app_body.replace(
                b'"tok3 "}\n\n', b'"tok3 "}\n\nevent: ping\ndata: {}\n\n', 1
            )
            assert unstamped == app_body

            rng = random.Random(17)
            limit = asyncio.Semaphore(16)
            readers: list[Reader] = []

            async def one_stream(n: int) -> None:
                reader = Reader(http, [one, two], user=f"user{n % 7}")
                readers.append(reader)
                async with limit:
                    await reader.read(f"n={n}&count={count}", random.Random(rng.random()), 3)
                assert reader.got == controls_out(expected(n, count)), (n, reader.log)
                # ids of the final generation: one stream id, each seq once, in order
                final = reader.ids[-1][0]
                seqs = [seq for sid, seq in reader.ids if sid == final]
                assert seqs == sorted(set(seqs)), n

            await asyncio.gather(*(one_stream(n) for n in range(200)))
            assert sum(r.resumes for r in readers) >= 200  # most streams were resumed

            # A finished stream resumed after its last id: 204 (EventSource stops there).
            done = readers[0]
            assert done.last is not None
            r = await http.get(
                f"{two}/stream", headers={"x-user": done.user, "last-event-id": done.last}
            )
            assert r.status_code == 204
            # Another owner's resume is refused, on either process, and so is an unknown id.
            for base in (one, two):
                r = await http.get(
                    f"{base}/stream", headers={"x-user": "mallory", "last-event-id": done.last}
                )
                assert r.status_code == 404
            r = await http.get(
                f"{one}/stream", headers={"x-user": done.user, "last-event-id": "0" * 32 + "-1"}
            )
            assert r.status_code == 404


async def test_the_generation_goes_on_without_its_client(redis_url: str, prefix: str) -> None:
    """Cut after the first event, wait until the app is done, resume on the other process:
    the rest is all there (the app was not cancelled when its client left)."""
    env = {"RESUME_REDIS_URL": redis_url, "RESUME_PREFIX": prefix}
    ports = [free_port(), free_port()]
    with (
        server_process(_command(ports[0]), ports[0], env) as one,
        server_process(_command(ports[1]), ports[1], env) as two,
    ):
        async with httpx.AsyncClient(timeout=30.0) as http:
            reader = Reader(http, [one], user="carol")
            query = "n=3&count=30&delay=0.01"
            async with http.stream(
                "GET", f"{one}/stream?{query}", headers={"x-user": "carol"}
            ) as r:
                buffer = b""
                async for chunk in r.aiter_raw():
                    buffer += chunk
                    if b"id: " in buffer and buffer.count(b"\n\n") >= 3:
                        break
            reader._take(buffer)
            assert reader.last is not None
            client: Any = aioredis.Redis.from_url(redis_url)
            try:
                for _ in range(500):  # bounded: the detached app logs its end
                    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
                    last = await client.xrevrange(keys[0], "+", "-", count=1) if keys else []
                    if last and b"e" in last[0][1]:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("the detached stream never ended its log")
                assert await client.ttl(keys[0]) > 0
            finally:
                await client.aclose()
            reader.bases = [two]
            await reader.read(query, random.Random(1), 0)
            assert reader.got == controls_out(expected(3, 30))


async def test_a_resume_ahead_of_the_log(redis_url: str, prefix: str) -> None:
    """The log trails the client by one write: a resume from an id not logged yet waits for
    the stream's first write (not a 404) and cuts the first live batch after the id."""
    from streamboost._resume._log import RedisLog
    from streamboost._resume._writer import Pending

    sid = "ab" * 16
    config = ResumeConfig(redis_url=redis_url, owner=lambda s: "dora", key_prefix=prefix)
    log = RedisLog(config)

    def batch(first: int, last: int) -> bytes:
        return b"".join(
            b"data: %d\nid: %s-%d\n\n" % (i, sid.encode(), i) for i in range(first, last + 1)
        )

    async def write(state: Pending, first: int, last: int, *, end: bool) -> None:
        state.parts.append(batch(first, last))
        state.seq, state.end = last, end
        before = await client.xlen(state.key)
        log.writer().add(state)
        for _ in range(200):  # bounded: until the writer's XADD is in
            if await client.xlen(state.key) > before:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the writer never wrote")

    port = free_port()
    env = {"RESUME_REDIS_URL": redis_url, "RESUME_PREFIX": prefix}
    client: Any = aioredis.Redis.from_url(redis_url)
    try:
        with server_process(_command(port), port, env) as base:
            async with httpx.AsyncClient(timeout=30.0) as http:
                headers = {"x-user": "dora"}

                async def resume(seq: int) -> httpx.Response:
                    last = {"last-event-id": f"{sid}-{seq}"}
                    return await http.get(f"{base}/stream", headers={**headers, **last})

                assert (await resume(1)).status_code == 404  # warm: redis imported, connected
                # Not in the log yet: the resume waits for the first write.
                state = Pending(log.key("dora", sid))
                asked = asyncio.ensure_future(resume(2))
                await asyncio.sleep(0.1)
                await write(state, 1, 3, end=True)
                r = await asked
                assert (r.status_code, r.content) == (200, batch(3, 3))
                # Logged up to 3, the client got 5: the live tail starts after 5.
                sid = "cd" * 16
                state = Pending(log.key("dora", sid))
                await write(state, 1, 3, end=False)
                asked = asyncio.ensure_future(resume(5))
                await asyncio.sleep(0.1)
                await write(state, 4, 7, end=True)
                r = await asked
                assert (r.status_code, r.content) == (200, batch(6, 7))
    finally:
        await log.aclose()
        await client.aclose()


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


async def test_resumes_have_metrics_under_route_resume(redis_url: str, prefix: str) -> None:
    """A resume is measured like any stream (its own record: status, events, outcome), with
    the route label ``resume``; the stream it resumes keeps its own route's."""
    env = {"RESUME_REDIS_URL": redis_url, "RESUME_PREFIX": prefix}
    port = free_port()
    with server_process(_command(port), port, env) as base:
        async with httpx.AsyncClient(timeout=30.0) as http:
            user = {"x-user": "erin"}
            whole = await http.get(f"{base}/stream?n=1&count=10", headers=user)
            ids = [line[4:].decode() for line in whole.content.split(b"\n") if line[:4] == b"id: "]
            assert len(ids) == 11
            replayed = await http.get(f"{base}/stream", headers={**user, "last-event-id": ids[3]})
            assert replayed.status_code == 200
            events = replayed.content.count(b"\nid: ")
            assert events == 7
            ended = await http.get(f"{base}/stream", headers={**user, "last-event-id": ids[-1]})
            assert ended.status_code == 204
            other = {"x-user": "mallory", "last-event-id": ids[3]}
            assert (await http.get(f"{base}/stream", headers=other)).status_code == 404
            # A resume of a live stream whose client leaves during the tail.
            async with http.stream(
                "GET", f"{base}/stream?n=2&count=60&delay=0.02", headers=user
            ) as r:
                first = b""
                async for chunk in r.aiter_raw():
                    first += chunk
                    if b"\nid: " in first and first.endswith(b"\n\n"):
                        break
            live_id = re.findall(rb"\nid: ([0-9a-f]{32}-[0-9]+)", first)[-1].decode()
            async with http.stream(
                "GET", f"{base}/stream", headers={**user, "last-event-id": live_id}
            ) as r:
                async for chunk in r.aiter_raw():
                    if b"\nid: " in chunk:
                        break
            text = ""
            for _ in range(200):  # bounded: the server settles the left resume's record
                text = (await http.get(f"{base}/metrics")).text
                left = _samples(
                    text, "streamboost_streams_total", route="resume", outcome="client_disconnected"
                )
                if left >= 1:
                    break
                await asyncio.sleep(0.02)
    requests = "streamboost_http_requests_total"
    assert _samples(text, requests, route="resume", status="200") == 2
    assert _samples(text, requests, route="resume", status="204") == 1
    assert _samples(text, requests, route="resume", status="404") == 1
    streams = "streamboost_streams_total"
    assert _samples(text, streams, route="resume", outcome="completed") == 1
    assert _samples(text, streams, route="resume", outcome="client_disconnected") == 1
    assert _samples(text, "streamboost_stream_events_total", route="resume") >= events + 1
    assert _samples(text, "streamboost_time_to_first_token_seconds_count", route="resume") == 2
    # The first stream, under its own route (the second may still run, detached).
    assert _samples(text, requests, route="/stream", status="200") >= 1


async def test_a_refused_write_ends_that_stream_log_only(redis_url: str, prefix: str) -> None:
    """Two streams in one write, one key of another type: that stream is no longer logged
    (nothing after the refused batch either), the other one is."""
    from streamboost._resume._log import RedisLog
    from streamboost._resume._writer import Pending

    log = RedisLog(ResumeConfig(redis_url=redis_url, owner=lambda s: "u", key_prefix=prefix))
    client: Any = aioredis.Redis.from_url(redis_url)
    try:
        bad, good = Pending(log.key("u", "1" * 32)), Pending(log.key("u", "2" * 32))
        await client.set(bad.key, b"not a stream")
        for state in (bad, good):
            state.done = asyncio.get_running_loop().create_future()
            state.parts.append(b"data: a\nid: x-1\n\n")
            state.seq = 1
            log.writer().add(state)
        for _ in range(200):  # bounded: until the first write is in
            if await client.exists(good.key):
                break
            await asyncio.sleep(0.005)
        assert bad.failed and not good.failed
        for state in (bad, good):
            state.parts.append(b"data: b\nid: x-2\n\n")
            state.seq, state.end = 2, True
            log.writer().add(state)
        await asyncio.wait_for(asyncio.gather(bad.done, good.done), 5)  # type: ignore[arg-type]
        assert await client.get(bad.key) == b"not a stream"
        entries = await client.xrange(good.key)
        assert [e[0] for e in entries] == [b"0-1", b"0-2"]
        assert b"e" in entries[-1][1] and await client.ttl(good.key) > 0
    finally:
        await log.aclose()
        await client.aclose()


async def test_redis_down_the_stream_still_reaches_its_client(prefix: str) -> None:
    port = free_port()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {"RESUME_REDIS_URL": dead, "RESUME_PREFIX": prefix}
    with server_process(_command(port), port, env) as base:
        async with httpx.AsyncClient(timeout=30.0) as http:
            r = await http.get(f"{base}/stream?n=4&count=20", headers={"x-user": "fay"})
            assert r.status_code == 200
            unstamped = re.sub(rb"(?m)^id: [^\n]*\n", b"", r.content)
            assert controls_out(unstamped) == controls_out(expected(4, 20))
            last = re.findall(rb"\nid: ([0-9a-f]{32}-[0-9]+)", r.content)[-1].decode()
            r = await http.get(f"{base}/stream", headers={"x-user": "fay", "last-event-id": last})
            assert r.status_code == 503  # the log is unreachable: try again later


async def test_a_write_without_answer_fails_after_timeout(prefix: str) -> None:
    """A Redis that accepts and never answers: the write fails after ``timeout`` (the
    writer's deadline), its streams are no longer logged, and the writer goes on."""
    from streamboost._resume._log import RedisLog
    from streamboost._resume._writer import Pending

    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ResumeConfig(
        redis_url=f"redis://127.0.0.1:{port}/0",
        owner=lambda s: "u",
        key_prefix=prefix,
        timeout=0.2,
    )
    log = RedisLog(config)
    try:
        loop = asyncio.get_running_loop()
        for round_ in range(2):  # the second: the writer survived the first timeout
            state = Pending(log.key("u", f"{round_}" * 32))
            state.done = loop.create_future()
            state.parts.append(b"data: a\nid: x-1\n\n")
            state.seq, state.end = 1, True
            started = loop.time()
            log.writer().add(state)
            await asyncio.wait_for(state.done, 5)
            assert state.failed
            assert loop.time() - started >= 0.2
    finally:
        await log.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
