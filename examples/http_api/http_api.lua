-- HTTP API authorization for an API gateway: the first route matching the request's method and
-- path decides; a route may be public, need a scope, a role, the caller's own organisation
-- (`same_org`: the :org path parameter equals the token's org claim) or the caller's own user id
-- (`self`: the :user parameter equals the token's subject). Unknown routes are denied.
--
-- input: { method = "GET", path = "/v1/orgs/acme/projects/42", now = 1700000000,
--          claims = { iss, aud, sub, exp, scope = "projects:read ...", org = "acme", roles = {...} } }
local paths = require("lib.paths")
local claims_lib = require("lib.claims")

local function find_route(routes, method, path)
  for _, route in ipairs(routes) do
    if route.method == "*" or route.method == method then
      local params = paths.match(route.path, path)
      if params then return route, params end
    end
  end
  return nil
end

return function(input, data)
  local method, path = input.method, input.path
  if type(method) ~= "string" or type(path) ~= "string" then return false, "method and path are required" end
  if paths.suspicious(path) then return false, "suspicious path " .. path end

  local route, params = find_route(data.routes, method, path)
  if route == nil then return false, "no route for " .. method .. " " .. path end
  if route.public then return true, "public route" end

  local claims = input.claims
  local problem = claims_lib.problem(claims, input.now or os.time(), data)
  if problem then return false, problem end

  local reasons = {}
  if route.scope and not claims_lib.scopes(claims.scope)[route.scope] then
    reasons[#reasons + 1] = "missing scope " .. route.scope
  end
  if route.role and not claims_lib.has_role(claims, route.role) then
    reasons[#reasons + 1] = "requires role " .. route.role
  end
  if route.same_org and params.org ~= claims.org then
    reasons[#reasons + 1] = "organisation " .. params.org .. " is not the caller's"
  end
  if route["self"] and params.user ~= claims.sub then
    reasons[#reasons + 1] = "only the user themself may access " .. path
  end
  return { allow = #reasons == 0, reasons = reasons }
end
