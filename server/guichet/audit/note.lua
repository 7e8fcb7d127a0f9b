-- Write one audit record for an act that is not itself a Redis write (a key file rotated, a
-- report issued): the generic note of audit/notes.py.
-- KEYS: + audit chain key last   ARGV[1] outcome (e.g. 'rotated', 'issued'); + act last, see
-- lua_include/audit.lua
-- Returns the record's seq.
--!include guichet.audit:lua_include/audit.lua
return audit_write(ARGV[1])
