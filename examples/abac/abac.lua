-- Attribute-based access control over documents: the decision depends on attributes of the
-- subject (clearance, department, status), the resource (classification, department, owner)
-- and the environment (hour of the request).
--
-- input: {
--   subject = { id, department, clearance, suspended },
--   resource = { id, owner, department, classification },
--   action = "read" | "write",
--   env = { hour = 0..23 },
-- }
local attr = require("lib.attributes")

return function(input, data)
  local s, r, action = input.subject, input.resource, input.action
  if s.suspended then return false, "subject is suspended" end
  if r.owner == s.id then return true, "owner" end

  local reasons = {}
  if attr.clearance(data.levels, s.clearance) < attr.classification(data.levels, r.classification) then
    reasons[#reasons + 1] = "clearance " .. tostring(s.clearance) .. " is below " .. tostring(r.classification)
  end
  if r.classification ~= "public" and r.department ~= s.department then
    reasons[#reasons + 1] = "resource belongs to department " .. tostring(r.department)
  end
  if action == "write" then
    local hour = input.env and input.env.hour
    if type(hour) ~= "number" or hour < data.write_hours.from or hour >= data.write_hours.to then
      reasons[#reasons + 1] = string.format("writes are allowed from %02d:00 to %02d:00", data.write_hours.from, data.write_hours.to)
    end
  elseif action ~= "read" then
    reasons[#reasons + 1] = "unknown action " .. tostring(action)
  end
  return { allow = #reasons == 0, reasons = reasons }
end
