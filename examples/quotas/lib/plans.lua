-- Plan limits shared by the quota policies.
local M = {}

M.UNLIMITED = "unlimited"

-- The plan of `account` (nil when the account is unknown) and its name.
function M.of(data, account)
  local name = data.accounts[account]
  if name == nil then return nil, nil end
  return data.plans[name], name
end

-- Whether using `amount` more of something, with `used` already used, stays within `limit`.
function M.fits(limit, used, amount)
  if limit == M.UNLIMITED then return true end
  return used + amount <= limit
end

return M
