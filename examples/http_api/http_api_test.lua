-- Tests of the HTTP API policy: `deno run -A cli.ts test examples/http_api`.
local NOW = 1700000000

local function token(overrides)
  local c = {
    iss = "https://auth.example.com/", aud = "api.example.com", sub = "u-42", exp = NOW + 3600,
    scope = "projects:read", org = "acme", roles = { "member" },
  }
  for k, v in pairs(overrides or {}) do c[k] = v end
  return c
end

local function request(method, path, claims)
  return { method = method, path = path, now = NOW, claims = claims }
end

function test_member_reads_own_org_projects()
  assert_allow("http_api", request("GET", "/v1/orgs/acme/projects", token()))
  assert_allow("http_api", request("GET", "/v1/orgs/acme/projects/42", token()))
end

function test_scope_is_required_for_writes()
  assert_deny("http_api", request("POST", "/v1/orgs/acme/projects", token()), "missing scope projects:write")
  assert_allow("http_api", request("POST", "/v1/orgs/acme/projects", token({ scope = "projects:read projects:write" })))
end

function test_cross_org_access_is_denied()
  assert_deny("http_api", request("GET", "/v1/orgs/globex/projects/1", token()), "globex is not the caller's")
end

function test_delete_needs_owner_role()
  local writer = token({ scope = "projects:write" })
  assert_deny("http_api", request("DELETE", "/v1/orgs/acme/projects/42", writer), "requires role owner")
  writer.roles = { "owner" }
  assert_allow("http_api", request("DELETE", "/v1/orgs/acme/projects/42", writer))
end

function test_self_route()
  assert_allow("http_api", request("GET", "/v1/users/u-42/profile", token()))
  assert_deny("http_api", request("GET", "/v1/users/u-43/profile", token()), "only the user themself")
end

function test_admin_wildcard_route()
  assert_deny("http_api", request("GET", "/v1/admin/stats", token()), "requires role admin")
  assert_allow("http_api", request("PUT", "/v1/admin/users/u-1/roles", token({ roles = { "admin" } })))
  assert_allow("http_api", request("GET", "/v1/admin", token({ roles = { "admin" } })))
end

function test_token_checks()
  assert_deny("http_api", request("GET", "/v1/orgs/acme/projects", nil), "no token")
  assert_deny("http_api", request("GET", "/v1/orgs/acme/projects", token({ exp = NOW })), "token expired")
  assert_deny("http_api", request("GET", "/v1/orgs/acme/projects", token({ iss = "https://evil/" })), "not trusted")
  assert_deny("http_api", request("GET", "/v1/orgs/acme/projects", token({ aud = "other" })), "audience")
  assert_allow("http_api", request("GET", "/v1/orgs/acme/projects", token({ aud = { "x", "api.example.com" } })))
  assert_deny("http_api", request("GET", "/v1/orgs/acme/projects", token({ nbf = NOW + 10 })), "not valid yet")
end

function test_public_and_unknown_routes()
  assert_allow("http_api", request("GET", "/health", nil))
  assert_deny("http_api", request("POST", "/health", nil), "no route for POST /health")
  assert_deny("http_api", request("GET", "/v2/anything", token()), "no route")
end

function test_suspicious_paths()
  assert_deny("http_api", request("GET", "/v1/orgs/acme/../globex/projects", token()), "suspicious path")
  assert_deny("http_api", request("GET", "/v1/orgs/acme%2F..%2Fglobex/projects", token()), "suspicious path")
  assert_deny("http_api", request("GET", "//v1/orgs/acme/projects", token()), "suspicious path")
end
