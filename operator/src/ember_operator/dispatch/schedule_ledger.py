"""The scheduler's memory in Redis: per schedule Trigger, the latest tick
accounted for (fired, or skipped as missed) and the fingerprint of the
schedule it belongs to, in the Trigger's slot (``keys.trigger_tag``).

It is a hint, never the guard: the idempotency key of each tick is what
makes it fire once. A lost or stale ledger costs at most a tick fired
late (deduped) or a restart treated as a new Trigger (starts from now).
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from ember_operator.dispatch.keys import PREFIX, trigger_tag

Key = tuple[str, str]  # (namespace, Trigger name)


def ledger_key(namespace: str, name: str) -> str:
    return f"{PREFIX}:{trigger_tag(namespace, name)}:cron"


# through only moves forward for one fingerprint; a new fingerprint (a new
# schedule, or a Trigger recreated under the same name) starts over.
_ADVANCE = """
local fp = redis.call('HGET', KEYS[1], 'fp')
local through = tonumber(redis.call('HGET', KEYS[1], 'through') or '-1')
if fp ~= ARGV[1] or through < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'through', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Ledger(Protocol):
    async def load(self, key: Key, fingerprint: str) -> float | None: ...
    async def advance(self, key: Key, fingerprint: str, through: float, ttl: int) -> None: ...
    async def forget(self, key: Key) -> None: ...


class RedisLedger:
    """The latest tick accounted for per Trigger, in the Trigger's slot."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def load(self, key: Key, fingerprint: str) -> float | None:
        fp, through = await self.redis.hmget(ledger_key(*key), ["fp", "through"])
        if through is None or fp not in (fingerprint, fingerprint.encode()):
            return None
        return float(through)  # str or bytes

    async def advance(self, key: Key, fingerprint: str, through: float, ttl: int) -> None:
        await self.redis.eval(_ADVANCE, 1, ledger_key(*key), fingerprint, repr(through), ttl)

    async def forget(self, key: Key) -> None:
        await self.redis.delete(ledger_key(*key))
