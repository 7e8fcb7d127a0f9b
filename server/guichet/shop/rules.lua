-- Create or replace a sale's rules and bump their version, in one step: workers cache the
-- rules, and the hold script refuses ('stale') a decision made with another version, so a
-- change applies to the very next hold on every worker.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   (+ audit chain key / act last, see audit.lua)
-- ARGV: field, value, field, value, … (the rules as cfg fields)
-- Returns {created (1/0), version}
local created = redis.call('EXISTS', KEYS[1]) == 0 and 1 or 0
redis.call('HSET', KEYS[1], unpack(ARGV))
audit_write(created == 1 and 'created' or 'updated')
return {created, redis.call('HINCRBY', KEYS[1], 'version', 1)}
