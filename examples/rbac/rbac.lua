-- Role-based access control: a user may do `action` on a resource of type `type` when one of
-- the user's roles (or a role it inherits from) grants "type:action".
--
-- input: { user = "bob", action = "write", resource = { type = "document", id = "d1" } }
-- data:  { roles = { name = { grants = {...}, inherits = {...} } }, bindings = { user = { role, ... } } }
local roles = require("lib.roles")

return function(input, data)
  local user, action, resource = input.user, input.action, input.resource
  if type(user) ~= "string" or type(action) ~= "string" or type(resource) ~= "table" then
    return false, "malformed request: user, action and resource are required"
  end
  local bound = data.bindings[user]
  if bound == nil or #bound == 0 then
    return false, "user '" .. user .. "' has no roles"
  end
  local wanted = resource.type .. ":" .. action
  local granted = roles.permissions(data.roles, bound)
  local via = granted[wanted]
  if via then
    return { allow = true, reasons = { "role '" .. via .. "' grants " .. wanted } }
  end
  local names = {}
  for _, name in ipairs(bound) do names[#names + 1] = name end
  return false, "roles " .. roles.list(names) .. " do not grant " .. wanted
end
