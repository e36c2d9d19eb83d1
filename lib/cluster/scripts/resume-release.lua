-- A parked session resumed on a server: its entries leave its holder's presence (and counts),
-- with nothing told, as it is in its rooms again on that server. See ../redis-resumes.ts.
-- KEYS: the holder's counts hash, then the holder's presence hash of each of its rooms.
-- ARGV: the named arguments below, in the order of RELEASE_ARGS (../redis-resumes.ts), then
-- the name of each room, in the order of KEYS.
local sessionId = unpack(ARGV, 1, 1)

for i = 2, #KEYS do
  if redis.call('HDEL', KEYS[i], sessionId) == 1 and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], -1)
  end
end
return true
