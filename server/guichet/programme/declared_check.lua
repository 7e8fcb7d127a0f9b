-- The conflict-of-interest declaration check alone, writing nothing (lua_include/declared.lua):
-- an act done in several script calls (a pool file of both games, a reclaim of every
-- programme) checks every part's declaration first, so that a refusal comes before any part is
-- done and recorded; each part's own script still checks atomically.
-- KEYS[1] declarations  ARGV[1] the declaration ask (see lua_include/declared.lua)
-- Returns {'ok'} | a refusal of declared.lua
--!include lua_include/declared.lua
return declared_refusal() or {'ok'}
