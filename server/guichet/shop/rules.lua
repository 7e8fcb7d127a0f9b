-- Create or replace a sale's rules and bump their version, in one step: workers cache the
-- rules, and the hold script refuses ('stale') a decision made with another version, so a
-- change applies to the very next hold on every worker.
-- KEYS[1] cfg
-- ARGV: field, value, field, value, … (the rules as cfg fields)
-- Returns {created (1/0), version}
local created = redis.call('EXISTS', KEYS[1]) == 0 and 1 or 0
redis.call('HSET', KEYS[1], unpack(ARGV))
return {created, redis.call('HINCRBY', KEYS[1], 'version', 1)}
