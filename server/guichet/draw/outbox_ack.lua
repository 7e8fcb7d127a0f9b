-- Acknowledge notices the mailer sent (they may then be trimmed), as one act with its record.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] outbox stream   (+ audit chain key / act last, see audit.lua)
-- ARGV[1] group   ARGV[2..] notice ids
-- Returns the number of notices acknowledged (ids already acknowledged count 0).
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
audit_write('acked')
return acked
