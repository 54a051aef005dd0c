-- Path matching with string patterns: "/v1/orgs/:org/projects/:project" matches
-- "/v1/orgs/acme/projects/42" with params { org = "acme", project = "42" }; a final "**" matches
-- any rest (including nothing).
local M = {}

local function segments(path)
  local parts = {}
  for part in string.gmatch(path, "[^/]+") do parts[#parts + 1] = part end
  return parts
end

-- The params of `path` under `pattern`, or nil when it does not match.
function M.match(pattern, path)
  local want, got = segments(pattern), segments(path)
  local params = {}
  for i, seg in ipairs(want) do
    if seg == "**" and i == #want then return params end
    local value = got[i]
    if value == nil then return nil end
    local name = string.match(seg, "^:([%w_]+)$")
    if name then
      params[name] = value
    elseif seg ~= value then
      return nil
    end
  end
  if #got ~= #want then return nil end
  return params
end

-- Rejects what a router might normalise differently: "..", "//", encoded slashes.
function M.suspicious(path)
  return string.find(path, "..", 1, true) ~= nil
    or string.find(path, "//", 1, true) ~= nil
    or string.find(string.lower(path), "%2f", 1, true) ~= nil
end

return M
