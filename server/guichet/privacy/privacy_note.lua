-- An act recorded on its own in the audit log: one whose reads span several slots (the access
-- export of an account's public-sale data), so that no one script can both do it and record it.
-- Stands in for the audit-core slice's generic note script (swap note.py's one function).
--!include guichet.audit:lua_include/audit.lua
-- KEYS: none of its own   (+ audit chain key last, see audit.lua)
-- ARGV[1] outcome   (+ act last, see audit.lua)
-- Returns the record's sequence number.
return audit_write(ARGV[1])
