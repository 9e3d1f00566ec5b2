"""defer(): runs in the background, bounded, retried, counted, drained."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import weakref

import pytest
from prometheus_client import CollectorRegistry

from streamboost import DeferConfig, QueueFull, RetryPolicy, configure_defer, defer, drain_deferred
from streamboost._deferred import export_defer_metrics

FAST = RetryPolicy(retries=3, backoff=0.001, max_backoff=0.002)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_async_and_sync_callables_run_and_drain() -> None:
    done: list[tuple[str, object]] = []

    async def save(value: int, *, tag: str) -> None:
        await asyncio.sleep(0.01)
        done.append((tag, value))

    def save_sync(value: int) -> None:
        done.append((threading.current_thread().name, value))

    defer(save, 1, tag="async")
    defer(save_sync, 2)
    assert done == []  # nothing ran on the caller's path
    assert await drain_deferred(5) == 0
    assert ("async", 1) in done
    # No task of the runner outlives the drain.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "streamboost-defer"]
    sync_thread = next(tag for tag, value in done if value == 2)
    assert isinstance(sync_thread, str) and sync_thread.startswith("streamboost-deferred")


async def test_jobs_see_the_callers_contextvars() -> None:
    seen: list[str] = []

    async def job() -> None:
        seen.append(request_id.get())

    token = request_id.set("req-42")
    defer(job)
    request_id.reset(token)
    await drain_deferred(5)
    assert seen == ["req-42"]


async def test_a_job_without_other_references_still_runs() -> None:
    # The job waits on a future only its own frame refers to: a task nobody holds strongly
    # forms a garbage cycle with that future and is collected mid-flight (the loop keeps
    # weak references only). The weak reference below dies if defer() kept no strong one.
    loop = asyncio.get_running_loop()
    box: list[weakref.ref[asyncio.Future[None]]] = []
    done = asyncio.Event()

    async def job() -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        box.append(weakref.ref(waiter))
        await waiter
        done.set()

    async def another() -> None:
        others.set()

    others = asyncio.Event()
    defer(job)
    defer(another)  # so no local variable of the runner still names the job's task
    await asyncio.wait_for(others.wait(), 5)
    for _ in range(500):  # bounded: until the job runs and waits
        if box:
            break
        await asyncio.sleep(0.001)
    gc.collect()
    waiter = box[0]()
    assert waiter is not None, "the deferred job was garbage-collected while it waited"
    waiter.set_result(None)
    del waiter
    await asyncio.wait_for(done.wait(), 5)


async def test_concurrency_is_bounded() -> None:
    configure_defer(DeferConfig(max_concurrency=3))
    running = peak = finished = 0

    async def job() -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        finished += 1

    for _ in range(30):
        defer(job)
    assert await drain_deferred(10) == 0
    assert finished == 30 and peak == 3


async def test_failures_are_retried_then_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_defer(DeferConfig(retry=FAST))
    registry = CollectorRegistry()
    export_defer_metrics(registry)
    attempts = {"flaky": 0, "broken": 0}

    async def flaky() -> None:
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ConnectionError("try again")

    def broken() -> None:
        attempts["broken"] += 1
        raise ValueError("bad row")

    with caplog.at_level(logging.WARNING, logger="streamboost.deferred"):
        defer(flaky)
        defer(broken)
        assert await drain_deferred(5) == 0
    assert attempts == {"flaky": 3, "broken": 4}
    assert any("broken" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    def value(outcome: str) -> float | None:
        return registry.get_sample_value(
            "streamboost_deferred_items_total", {"writer": "defer", "outcome": outcome}
        )

    assert (value("written"), value("retried"), value("failed")) == (1.0, 5.0, 1.0)


async def test_drain_reports_what_cannot_finish(caplog: pytest.LogCaptureFixture) -> None:
    finished: list[int] = []

    async def quick() -> None:
        finished.append(1)

    async def forever() -> None:
        await asyncio.Event().wait()

    defer(quick)
    defer(forever)
    defer(forever)
    for _ in range(500):  # bounded: let quick finish first, so the count below is exact
        if finished:
            break
        await asyncio.sleep(0.001)
    with caplog.at_level(logging.ERROR, logger="streamboost.deferred"):
        assert await drain_deferred(0.2) == 2
    assert finished == [1]
    assert any("2 jobs did not finish" in r.getMessage() for r in caplog.records)


async def test_pending_jobs_are_bounded() -> None:
    configure_defer(DeferConfig(max_pending=5, max_concurrency=1))

    async def job() -> None:
        pass

    for _ in range(5):
        defer(job)
    with pytest.raises(QueueFull, match="max_pending=5"):
        defer(job)
    assert await drain_deferred(5) == 0


async def test_defer_from_a_worker_thread_runs_on_the_loop() -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def job() -> None:
        assert asyncio.get_running_loop() is loop
        done.set()

    async def warm_up() -> None:
        pass

    defer(warm_up)  # binds the runner to this loop
    await asyncio.to_thread(defer, job)
    await asyncio.wait_for(done.wait(), 5)


def test_defer_without_any_loop_explains_itself() -> None:
    async def job() -> None:
        pass

    with pytest.raises(RuntimeError, match="outside an event loop"):
        defer(job)


async def test_defer_works_again_after_a_drain() -> None:
    done: list[int] = []

    async def job(n: int) -> None:
        done.append(n)

    defer(job, 1)
    assert await drain_deferred(5) == 0  # stops the runner's dispatcher
    await asyncio.to_thread(defer, job, 2)  # a thread of the app, after the drain
    defer(job, 3)
    assert await drain_deferred(5) == 0
    assert sorted(done) == [1, 2, 3]
