-- Role expansion shared by the RBAC policies: a role grants its own permissions plus those of
-- every role it inherits from (transitively; cycles are ignored).
local M = {}

-- The set of permissions (permission -> role that grants it) of the given role names.
function M.permissions(roles, names)
  local granted, seen = {}, {}
  local function visit(name)
    if seen[name] then return end
    seen[name] = true
    local role = roles[name]
    if role == nil then return end
    for _, permission in ipairs(role.grants or {}) do
      if granted[permission] == nil then granted[permission] = name end
    end
    for _, parent in ipairs(role.inherits or {}) do visit(parent) end
  end
  for _, name in ipairs(names) do visit(name) end
  return granted
end

-- "a, b and c"
function M.list(names)
  if #names == 0 then return "none" end
  return table.concat(names, ", ")
end

return M
