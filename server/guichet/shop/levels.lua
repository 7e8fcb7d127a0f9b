-- Read a sale's counts in one atomic step (a consistent snapshot for the audit and the views).
-- KEYS[1] loaded  KEYS[2] stock  KEYS[3] held  KEYS[4] sold
-- Returns the four hashes as flat field/value lists
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
