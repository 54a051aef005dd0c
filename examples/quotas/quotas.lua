-- Quotas and rate limits: the account's plan (data) bounds what it may use; current usage comes
-- from the host through the `usage(account)` capability, which needs the permission `usage.read`
-- (granted to this policy in luagate.json).
--
-- input: { account = "ada", operation = "api_call" | "upload" | "create_project", size_mb = 10 }
local plans = require("lib.plans")

local CHECKS = {
  api_call = function(plan, used) return "requests_per_day", used.requests_today, 1 end,
  upload = function(plan, used, input) return "storage_mb", used.storage_mb, input.size_mb or 0 end,
  create_project = function(plan, used) return "projects", used.projects, 1 end,
}

return function(input, data)
  local plan, plan_name = plans.of(data, input.account)
  if plan == nil then return false, "unknown account " .. tostring(input.account) end
  local check = CHECKS[input.operation]
  if check == nil then return false, "unknown operation " .. tostring(input.operation) end
  local used = usage(input.account)
  local quota, current, amount = check(plan, used, input)
  local limit = plan[quota]
  if plans.fits(limit, current, amount) then
    return true
  end
  return false, string.format("%s quota exceeded on plan %s: %s used + %s requested > %s",
    quota, plan_name, tostring(current), tostring(amount), tostring(limit))
end
