"""The shared limit: a Redis semaphore whose places are leases that expire with their holder.

One sorted set per limit (``SharedLimit.key``): a member per running stream (its lease id),
scored by the lease's expiry in Redis server milliseconds (``TIME``, so the machines' clocks
never meet). Every script first drops the expired members, so a holder that died (SIGKILL,
a lost machine) frees its place ``lease`` seconds after its last renewal, at the next
acquire of anyone. The key itself expires ``lease`` after the last write, so an idle limit
leaves nothing behind. ``redis`` is imported when a shared limit is first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._redis_client import BASE_ERRORS, PerLoop, new_client, redis_errors
from ._config import SharedLimit

# KEYS[1] the set; ARGV: limit, lease ms, then lease ids in the order they should get places.
# Returns how many of the ids (the first n) now hold a place.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local granted = 0
for i = 3, #ARGV do
  if granted >= free then break end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[i])
  granted = granted + 1
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return granted
"""
# Same arguments. Extends every id still holding a place; an id whose lease expired (Redis was
# unreachable for longer than the lease) gets a place again if there is room. Returns the ids
# that hold none.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
local missing = {}
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local lost = {}
for _, id in ipairs(missing) do
  if free > 0 then
    redis.call('ZADD', KEYS[1], expiry, id)
    free = free - 1
  else
    lost[#lost + 1] = id
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return lost
"""


class RedisSemaphore:
    """acquire / renew / release of lease ids on one shared limit; one client per event loop."""

    def __init__(self, config: SharedLimit) -> None:
        self.config = config
        self._lease_ms = max(1, round(config.lease * 1000))
        self._client = PerLoop()
        self._acquire: Any = None
        self._renew: Any = None
        self.errors: tuple[type[BaseException], ...] = BASE_ERRORS

    def _connect(self) -> Any:
        client = self._client.current()
        if client is not None:
            return client
        timeout = self.config.timeout
        # The client's socket timeouts bound every call; no retries: the admission decides.
        client = new_client(self.config.url, timeout=timeout, what="a shared admission limit needs")
        self.errors = redis_errors()
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        return self._client.set(client)

    def _args(self, ids: Sequence[str]) -> list[Any]:
        return [self.config.limit, self._lease_ms, *ids]

    async def acquire(self, ids: Sequence[str]) -> int:
        """How many of ``ids``, in order, now hold a place (the first n)."""
        self._connect()
        granted = await self._acquire(keys=[self.config.key], args=self._args(ids))
        return int(granted)

    async def renew(self, ids: Sequence[str]) -> list[str]:
        """Extend the leases of ``ids``; returns those that hold no place any more."""
        self._connect()
        lost = await self._renew(keys=[self.config.key], args=self._args(ids))
        return [item.decode() if isinstance(item, bytes) else str(item) for item in lost]

    async def release(self, ids: Sequence[str]) -> None:
        client = self._connect()
        await client.zrem(self.config.key, *ids)

    async def aclose(self) -> None:
        client = self._client.take()
        if client is not None:
            await client.aclose()
