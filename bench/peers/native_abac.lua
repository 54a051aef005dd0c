-- Driver for the native Lua rows of bench/peers/run.ts, run by `lua5.4 -` with a generated prefix
-- (see engines/native_lua.ts) that defines:
--   decide(input)       the shared ABAC policy (POLICY_LUA, loaded as-is)
--   REQUESTS            the same requests as Lua tables, built once up front (no per-call conversion)
--   ROUNDS, MIN_ROUND_S, WARMUP_S
-- It prints the answers, then per-round CPU time per decision (os.clock) without a hook and with a
-- no-op count hook every 1000 instructions (what a sandbox's instruction limit costs). The two modes
-- alternate round by round, so a change in machine load hits both alike.
local REQUESTS, ROUNDS, MIN_ROUND_S, WARMUP_S = REQUESTS, ROUNDS, MIN_ROUND_S, WARMUP_S
local clock, n = os.clock, #REQUESTS
local sethook = debug.sethook
local function hook() end

-- One pass over every request, calling the function itself, as every other row calls it.
local decide = decide
local function pass()
  local allows = 0
  for i = 1, n do
    if decide(REQUESTS[i]) then allows = allows + 1 end
  end
  return allows
end

local answers = {}
for i = 1, n do answers[i] = decide(REQUESTS[i]) == true and "1" or "0" end
print("VERSION " .. _VERSION)
print("ANSWERS " .. table.concat(answers))

local function warmup()
  local t0 = clock()
  repeat pass() until clock() - t0 >= WARMUP_S
end
warmup()
sethook(hook, "", 1000)
warmup()
sethook()

-- Passes per round so that one round (without the hook) lasts at least MIN_ROUND_S.
local t1 = clock()
pass()
local passes = math.max(1, math.ceil(MIN_ROUND_S / math.max(clock() - t1, 1e-6)))

local function round(label)
  local allows = 0
  local t = clock()
  for _ = 1, passes do allows = allows + pass() end
  local elapsed = clock() - t
  return string.format("ROUND %s %.6f %d %d", label, elapsed * 1e6 / (passes * n), allows, passes * n)
end

for _ = 1, ROUNDS do
  print(round("nohook"))
  sethook(hook, "", 1000)
  local line = round("hook")
  sethook()
  print(line)
end
