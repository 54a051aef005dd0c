-- Checks of JWT claims (the token's signature is verified by the gateway before the policy runs).
local M = {}

-- Space-separated scopes ("a b c") as a set.
function M.scopes(scope)
  local set = {}
  for s in string.gmatch(scope or "", "%S+") do set[s] = true end
  return set
end

-- nil when the token is acceptable, else why not.
function M.problem(claims, now, data)
  if type(claims) ~= "table" then return "no token" end
  if claims.iss ~= data.issuer then return "token issuer " .. tostring(claims.iss) .. " is not trusted" end
  local aud = claims.aud
  local ok = aud == data.audience
  if type(aud) == "table" then
    for _, a in ipairs(aud) do if a == data.audience then ok = true end end
  end
  if not ok then return "token audience does not include " .. data.audience end
  if type(claims.exp) ~= "number" or claims.exp <= now then return "token expired" end
  if type(claims.nbf) == "number" and claims.nbf > now then return "token not valid yet" end
  return nil
end

function M.has_role(claims, role)
  for _, r in ipairs(claims.roles or {}) do if r == role then return true end end
  return false
end

return M
