"""The Redis tier: namespaced keys, tag sets, a namespace version, locks and invalidation events.

``redis`` is imported here only, when a Redis cache is created: importing streamboost does not
need it. Every method may raise; the Cache wraps calls in its timeout and circuit breaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

# Deletes every key in the tag sets and the sets themselves, atomically, so an entry tagged
# while the invalidation runs is not left behind; returns the deleted keys for the event.
_INVALIDATE_TAGS = """
local deleted = {}
for _, tag in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', tag)
  for _, key in ipairs(members) do
    redis.call('DEL', key)
    deleted[#deleted + 1] = key
  end
  redis.call('DEL', tag)
end
return deleted
"""
# Deletes KEYS[1] only while it holds ARGV[1]: a lock release, or dropping a corrupt entry
# without deleting a good value another process wrote meanwhile.
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "a redis:// cache needs the redis client: pip install 'streamboost[redis]'"
        ) from exc
    return aioredis


class RedisStore:
    """Byte-level operations for one namespace on one Redis database."""

    def __init__(self, url: str, *, namespace: str, origin: bytes, timeout: float) -> None:
        aioredis = import_redis()
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        # redis-py bounds every read with socket_timeout already, so the cache's timeout costs
        # no timer of its own; retries would only delay the fail-open path (the breaker
        # decides when to try again). Blocking pub/sub reads are exempt from socket_timeout.
        self.client: Any = aioredis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self.origin = origin
        ns = namespace.encode()
        self.version_key = ns + b":__ns_version__"
        self.tag_prefix = ns + b":__tag__:"
        self.lock_prefix = ns + b":__lock__:"
        self.channel = ns + b":__events__"
        self._invalidate_tags = self.client.register_script(_INVALIDATE_TAGS)
        self._delete_if_equal = self.client.register_script(_DELETE_IF_EQUAL)

    async def get_many(self, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        """The namespace version and the stored envelopes, in one MGET."""
        raw = await self.client.mget([self.version_key, *keys])
        return int(raw[0] or 0), raw[1:]

    async def get(self, key: bytes) -> bytes | None:
        result: bytes | None = await self.client.get(key)
        return result

    async def set(self, key: bytes, payload: bytes, px: int, tags: Sequence[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, payload, px=px)
        for tag in tags:
            tag_key = self.tag_prefix + tag.encode()
            pipe.sadd(tag_key, key)
            # A fresh set has no TTL: NX gives it one, GT only ever lengthens it, so the set
            # outlives every member it lists.
            pipe.pexpire(tag_key, px, nx=True)
            pipe.pexpire(tag_key, px, gt=True)
        pipe.publish(self.channel, self.event(b"k", [key]))
        await pipe.execute()

    async def delete(self, keys: Sequence[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(*keys)
        pipe.publish(self.channel, self.event(b"k", keys))
        await pipe.execute()

    async def invalidate_tags(self, tags: Sequence[str]) -> list[bytes]:
        keys: list[bytes] = await self._invalidate_tags(
            keys=[self.tag_prefix + t.encode() for t in tags]
        )
        if keys:
            await self.client.publish(self.channel, self.event(b"k", keys))
        return keys

    async def bump_namespace(self) -> int:
        version = int(await self.client.incr(self.version_key))
        await self.client.publish(self.channel, self.event(b"c", [], version))
        return version

    async def try_lock(self, key: bytes, token: bytes, px: int) -> bool:
        return bool(await self.client.set(self.lock_prefix + key, token, nx=True, px=px))

    async def unlock(self, key: bytes, token: bytes) -> None:
        await self._delete_if_equal(keys=[self.lock_prefix + key], args=[token])

    async def drop(self, key: bytes, payload: bytes) -> None:
        """Delete the entry at ``key`` if it still holds ``payload``."""
        await self._delete_if_equal(keys=[key], args=[payload])

    def event(self, kind: bytes, keys: Sequence[bytes], version: int = 0) -> bytes:
        origin, names = self.origin.decode(), [k.decode() for k in keys]
        return orjson.dumps([origin, kind.decode(), names, version])

    async def aclose(self) -> None:
        await self.client.aclose()
