"""The Lua scripts: the few steps that must read and write atomically.

Each touches the keys of one slot only (see ``keys``), so it runs on a
Redis Cluster as on one node. Steps that only write several keys of one
slot use a ``MULTI`` transaction instead (``outcomes``).
"""

from __future__ import annotations

# A submission with an idempotency key (without one it is a plain XADD).
# KEYS: stream, idempotency key; ARGV: token, ttl, field, value
# -> {invocation id, 1 if created else 0}
SUBMIT = """
local existing = redis.call('GET', KEYS[2])
if existing then return {existing, 0} end
local id = redis.call('XADD', KEYS[1], '*', ARGV[3], ARGV[4]) .. '-' .. ARGV[1]
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
return {id, 1}
"""

# Before an attempt. KEYS: record[, done key]
# ARGV: attempt, seq, now, consumer, ttl, function, source, first
# -> 'run', or why not: 'final' (already finished: a copy delivered again),
# 'stale' (a newer copy was queued), 'duplicate' (its idempotency key
# already succeeded)
BEGIN = """
local st = redis.call('HMGET', KEYS[1], 'status', 'seq')
local status = st[1]
if status == 'succeeded' or status == 'dead-lettered' or status == 'failed' then
  return 'final'
end
if #KEYS == 2 and redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
if status and tonumber(ARGV[2]) < tonumber(st[2] or '1') then return 'stale' end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', ARGV[1], 'started', ARGV[3],
  'consumer', ARGV[4])
if not status then  -- a queue message (or a record past retention): a new record
  redis.call('HSET', KEYS[1], 'created', ARGV[8], 'function', ARGV[6], 'source', ARGV[7],
    'seq', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 'run'
"""

# An attempt that began without BEGIN (a fresh message, see ``deliver``),
# once it has run for a while or has failed: the record (made here if the
# submission left none) says running, with the attempt.
# KEYS: record; ARGV: attempt, started, consumer, ttl, function, source, created
MARK = """
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[1], 'started', ARGV[2], 'consumer', ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', ARGV[1], 'started', ARGV[2],
  'consumer', ARGV[3])
if not status then
  redis.call('HSET', KEYS[1], 'function', ARGV[5], 'source', ARGV[6], 'created', ARGV[7])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 1
"""

# Due retries into the retry stream. KEYS: delayed, retry stream
# ARGV: now, max -> how many moved
MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
"""

# A success, in one round trip (the hot path). KEYS: record[, stream][, done key]
# ARGV: ttl, flags ('a': XACK and XDEL the entry of KEYS[2]; 'r': a retried
# copy, whose record may hold an error and a next attempt to clear), group,
# entry id, invocation id, field, value, ...
SUCCEED = """
local ttl = ARGV[1]
if string.find(ARGV[2], 'r', 1, true) then
  redis.call('HSET', KEYS[1], 'status', 'succeeded', 'error', '', unpack(ARGV, 6))
  redis.call('HDEL', KEYS[1], 'next')
else
  redis.call('HSET', KEYS[1], 'status', 'succeeded', unpack(ARGV, 6))
end
redis.call('EXPIRE', KEYS[1], ttl)
local k = 2
if string.find(ARGV[2], 'a', 1, true) then
  redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  k = 3
end
if KEYS[k] then redis.call('SET', KEYS[k], ARGV[5], 'EX', ttl) end
return 1
"""
