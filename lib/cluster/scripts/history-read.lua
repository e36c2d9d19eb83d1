-- Reads a room's stream: its epoch, last offset and Redis's time, and the entries asked for;
-- creates the stream (empty, in a new epoch) when there is none, so that its position can be
-- handed out. See ../redis-log.ts.
-- KEYS: the room's meta hash, its stream.
-- ARGV: the named arguments below, in the order of READ_ARGS (../history-scripts.ts).
local newEpoch, ttl, after, limit, epoch = unpack(ARGV, 1, 5)

local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local m = redis.call('HMGET', KEYS[1], 'e', 'n')
if not m[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', newEpoch, 'n', '0')
  redis.call('PEXPIRE', KEYS[1], ttl)
  return { newEpoch, '0', now, {} }
end
local entries = {}
local count = tonumber(limit)
if count > 0 and (epoch == '' or epoch == m[1]) then
  if after == '' then
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', count)
  else
    entries = redis.call('XRANGE', KEYS[2], string.format('%d', tonumber(after) + 1), '+', 'COUNT', count)
  end
end
return { m[1], m[2], now, entries }
