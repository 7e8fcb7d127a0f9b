--!include guichet.audit:lua_include/audit.lua
-- The record of a control report (``guichet programme report``): the act is the report's
-- issuance, its digest the SHA-256 of the report's manifest.json. A stand-in for the audit
-- core's generic note script (replaced at merge).
-- KEYS: + audit chain key last; ARGV: + act last, see audit.lua
-- Returns the record's seq.
return audit_write('issued')
