-- Appends a batch of published messages to a room's stream and PUBLISHes each, in offset
-- order, if the stream is still where the node expects it (compare-and-set); otherwise writes
-- nothing and answers the stream's real position. See ../redis-log.ts.
-- KEYS: the room's meta hash (e: epoch, n: last offset, o/u: whose turn, until when), its stream.
-- ARGV: the named arguments below, in the order of PUBLISH_ARGS (../history-scripts.ts), then
-- three per message: the packet as PUBLISHed, its header's length, the session left out ('').
local channel, epoch, top, ttl, size, newEpoch, publishCommand, nodeId, askTurn, turnMs, flagsAt = unpack(ARGV, 1, 11)
local FIRST_MESSAGE = 12

local m = redis.call('HMGET', KEYS[1], 'e', 'n', 'o', 'u')
if not m[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', newEpoch, 'n', '0')
  redis.call('PEXPIRE', KEYS[1], ttl)
  m = { newEpoch, '0', false, false }
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = string.format('%d', ms)
local taken = m[3] and m[3] ~= nodeId and tonumber(m[4]) > ms
if taken or m[1] ~= epoch or m[2] ~= top then
  if askTurn == '1' and not taken then
    redis.call('HSET', KEYS[1], 'o', nodeId, 'u', string.format('%d', ms + tonumber(turnMs)))
  end
  return { 0, m[1], m[2] }
end
if m[3] then redis.call('HDEL', KEYS[1], 'o', 'u') end
local n = tonumber(m[2])
-- The stream keeps a message as the packet's flags byte, then the message's bytes.
local flags = tonumber(flagsAt) + 1
for i = FIRST_MESSAGE, #ARGV, 3 do
  n = n + 1
  local packet = ARGV[i]
  local data = string.sub(packet, flags, flags) .. string.sub(packet, tonumber(ARGV[i + 1]) + 1)
  if ARGV[i + 2] == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', size, string.format('%d-0', n), 't', now, 'd', data)
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', size, string.format('%d-0', n), 't', now, 'd', data, 'x', ARGV[i + 2])
  end
  redis.call(publishCommand, channel, packet)
end
redis.call('HSET', KEYS[1], 'n', string.format('%d', n))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return { 1, m[1], string.format('%d', n) }
