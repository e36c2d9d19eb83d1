-- Takes a parked session's state once: returns it and leaves 'taken' in its place (for the
-- rest of its time), so that a second claim, on any server, finds it taken. A state of
-- another route is not taken: the token is bound to its route. See ../redis-resumes.ts.
-- KEYS: the token's key.
-- ARGV: the named arguments below, in the order of CLAIM_ARGS (../redis-resumes.ts).
local routeKey = unpack(ARGV, 1, 1)

local state = redis.call('GET', KEYS[1])
if not state then return false end
local head = routeKey .. '\n'
if string.sub(state, 1, string.len(head)) ~= head then return 'taken' end
redis.call('SET', KEYS[1], 'taken', 'KEEPTTL')
return string.sub(state, string.len(head) + 1)
