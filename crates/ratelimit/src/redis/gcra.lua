-- resile-ratelimit: GCRA on one key, atomically, on the server's clock.
--
-- KEYS[1]  the key. Its value is the key's TAT (theoretical arrival time) in nanoseconds since the
--          Unix epoch, as a decimal integer; it expires on its own once the bucket is full again.
-- ARGV[1]  the operation: "r" reserve, "a" lease, "l" release, "p" pause
-- ARGV[2]  T, the emission interval, in nanoseconds
-- ARGV[3]  burst * T, the bucket's capacity, in nanoseconds
-- ARGV[4]  "r" and "l": the cost (n * T) in nanoseconds; "p": the delay in nanoseconds;
--          "a": the unused cells of the previous lease given back first, in nanoseconds
-- ARGV[5]  "r": the longest wait a reservation accepts, in nanoseconds; "a": the least it takes
--          (the request's cost, n * T)
-- ARGV[6]  "a": the most it takes (the lease's size, a whole number of cells, >= ARGV[5])
-- ARGV[7]  "a": the longest wait a reservation of the least accepts, in nanoseconds
--
-- "r" replies {allowed (0 or 1), remaining cells, retry_after ns, reset_after ns}; "a" replies
-- {granted ns (0 when refused), remaining cells, retry_after ns, reset_after ns}: as many whole
-- cells as conform now up to the most, or else the least as a reservation within its wait; "l"
-- and "p" reply 0. Lua numbers are doubles: every quantity below is a nanosecond offset from now, exact
-- while under 2^53 ns (104 days); the absolute TAT is only ever split into seconds and
-- nanoseconds, never held in one number.

-- Redis before 5.0 refuses writes after TIME unless the script replicates its effects.
if redis.replicate_commands then
  redis.replicate_commands()
end

local key = KEYS[1]
local op = ARGV[1]
local t = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local x = tonumber(ARGV[4])

local clock = redis.call('TIME')
local now_s = tonumber(clock[1])
local now_ns = tonumber(clock[2]) * 1000

-- Replies saturate at 2^62 ns (146 years), well inside a 64-bit integer reply.
local LIMIT = 4611686018427387904
local function clamp(v)
  if v > LIMIT then
    return LIMIT
  end
  return v
end

-- floor(a / b) and the remainder, exact for integers 0 <= a < 2^53, b > 0.
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
    r = r + b
  elseif r >= b then
    q = q + 1
    r = r - b
  end
  return q, r
end

-- d = TAT - now in ns, or nil when the key holds no TAT (a full bucket). A value this script did
-- not write is treated as no TAT, and the next admission overwrites it.
local d = nil
local raw = redis.call('GET', key)
if raw and #raw <= 20 and string.find(raw, '^%d+$') then
  local n = #raw
  local hi = 0
  local lo = tonumber(raw)
  if n > 9 then
    hi = tonumber(string.sub(raw, 1, n - 9))
    lo = tonumber(string.sub(raw, n - 8))
  end
  d = (hi - now_s) * 1000000000 + (lo - now_ns)
end

-- Sets the TAT to now + nd (nd > 0), expiring 1 ms after the bucket is full again (the margin
-- covers the server's millisecond expiry clock).
local function store(nd)
  local carry, lo = divmod(now_ns + nd, 1000000000)
  local ms, rest = divmod(nd, 1000000)
  if rest > 0 then
    ms = ms + 1
  end
  redis.call('SET', key, string.format('%d%09d', now_s + carry, lo),
    'PX', string.format('%d', ms + 1))
end

if op == 'r' then
  local cost = x
  local max_wait = tonumber(ARGV[5])
  local base = 0
  if d and d > 0 then
    base = d
  end
  local nd = base + cost
  if nd <= cap + max_wait then
    store(nd)
    if nd <= cap then
      return { 1, (divmod(cap - nd, t)), 0, clamp(nd) }
    end
    return { 1, 0, clamp(nd - cap), clamp(nd) }
  end
  local remaining = 0
  if base <= cap then
    remaining = (divmod(cap - base, t))
  end
  return { 0, remaining, clamp(base + cost - cap), clamp(base) }
elseif op == 'a' then
  if x > 0 and d and d > 0 then
    d = d - x
  end
  local least = tonumber(ARGV[5])
  local most = tonumber(ARGV[6])
  local max_wait = tonumber(ARGV[7])
  local base = 0
  if d and d > 0 then
    base = d
  end
  local room = cap - base
  if room >= least then
    local grant = most
    if room < most then
      grant = least + (divmod(room - least, t)) * t
    end
    local nd = base + grant
    store(nd)
    return { grant, (divmod(cap - nd, t)), 0, clamp(nd) }
  end
  local nd = base + least
  if nd <= cap + max_wait then
    store(nd)
    return { least, 0, clamp(nd - cap), clamp(nd) }
  end
  -- Refused: only the cells given back change the key.
  if x > 0 and d then
    if d > 0 then
      store(d)
    else
      redis.call('DEL', key)
    end
  end
  local remaining = 0
  if base <= cap then
    remaining = (divmod(cap - base, t))
  end
  return { 0, remaining, clamp(base + least - cap), clamp(base) }
elseif op == 'l' then
  if d and d > 0 then
    local nd = d - x
    if nd > 0 then
      store(nd)
    else
      redis.call('DEL', key)
    end
  end
  return 0
elseif op == 'p' then
  local nd = x + cap - t
  if nd > 0 and (d == nil or nd > d) then
    store(nd)
  end
  return 0
end
return redis.error_reply('resile-ratelimit: unknown operation')
