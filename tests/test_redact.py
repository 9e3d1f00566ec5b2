"""No password of a configured URL reaches an error message, a repr or a log line."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from tests.needs import free_port

from streamboost import Cache, DeferredWriter, Entry
from streamboost._deferred._worker import main as worker_main
from streamboost._redact import redact_url

SECRET = "s3cr3t-pw"


async def sink(entries: list[Entry[object]]) -> None:
    pass


def test_redact_url_hides_every_password_form() -> None:
    assert redact_url(f"redis://:{SECRET}@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url(f"rediss://me:{SECRET}@h/0?x=1") == "rediss://me:***@h/0?x=1"
    assert redact_url(f"redis://{SECRET}@h") == "redis://***@h"
    assert redact_url(f"redis://h/0?password={SECRET}&db=1") == "redis://h/0?password=***&db=1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Cache(f"valkey://:{SECRET}@127.0.0.1/0"),
        lambda: DeferredWriter(sink, durable=f"redis+sentinel://:{SECRET}@127.0.0.1:26379/m"),
        lambda: DeferredWriter(sink, dead_letter=f"redis+sentinel://:{SECRET}@127.0.0.1/m"),
    ],
)
def test_config_errors_do_not_echo_the_password(build: object) -> None:
    with pytest.raises(ValueError) as info:
        build()  # type: ignore[operator]
    assert SECRET not in str(info.value) and ":***@" in str(info.value)


def test_cli_worker_error_does_not_echo_the_password() -> None:
    with pytest.raises(ValueError) as info:
        worker_main(["tests.test_redact:sink", "--redis", f"redis+sentinel://:{SECRET}@h/m"])
    assert SECRET not in str(info.value)


async def test_reprs_and_logs_of_an_unreachable_redis_hold_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    caplog.set_level(logging.DEBUG)
    cache = Cache(url, namespace="sbtest:redact", registry=CollectorRegistry())
    writer = DeferredWriter(sink, durable=url, registry=CollectorRegistry())
    try:
        texts = [repr(cache), repr(writer), writer.dead_letters.description]

        async def load(n: int) -> int:
            return n

        from streamboost import cached

        assert await cached(ttl=1, cache=cache)(load)(1) == 1  # fails open: Redis is down
        with pytest.raises(Exception, match="Error") as info:
            await writer.start()
        texts.append(str(info.value))
    finally:
        await cache.aclose()
    assert all(SECRET not in text for text in texts)
    assert SECRET not in caplog.text
