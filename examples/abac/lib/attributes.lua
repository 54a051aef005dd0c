-- Attribute helpers shared by the ABAC policies.
local M = {}

-- Whether list `xs` contains `x`.
function M.contains(xs, x)
  for _, v in ipairs(xs or {}) do
    if v == x then return true end
  end
  return false
end

-- The numeric level of a clearance: an unknown one ranks below everything (fail closed).
function M.clearance(levels, name)
  return levels[name] or -1
end

-- The numeric level of a classification: an unknown one ranks above everything (fail closed).
function M.classification(levels, name)
  return levels[name] or math.huge
end

return M
