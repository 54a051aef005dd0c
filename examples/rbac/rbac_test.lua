-- Tests of the RBAC policy: `deno run -A cli.ts test examples/rbac`.
local function request(user, action, type)
  return { user = user, action = action, resource = { type = type or "document", id = "d1" } }
end

function test_admin_inherits_everything()
  assert_allow("rbac", request("alice", "delete"))
  assert_allow("rbac", request("alice", "write"))
  assert_allow("rbac", request("alice", "read"))
end

function test_editor_writes_but_does_not_delete()
  assert_allow("rbac", request("bob", "write"))
  assert_deny("rbac", request("bob", "delete"), "do not grant document:delete")
end

function test_viewer_reads_only()
  assert_allow("rbac", request("carol", "read"))
  assert_deny("rbac", request("carol", "write"))
end

function test_reason_names_the_granting_role()
  local d = decide("rbac", request("bob", "read"))
  assert_eq(d.allow, true)
  assert_eq(d.reasons, { "role 'viewer' grants document:read" })
end

function test_unknown_user_is_denied()
  assert_deny("rbac", request("mallory", "read"), "has no roles")
end

function test_malformed_request_is_denied()
  assert_deny("rbac", { user = "alice" }, "malformed request")
end

function test_data_is_read_only()
  -- the data document is shared by every decision: a test (like a policy) cannot change it
  local ok, err = pcall(function() data.bindings.mallory = { "admin" } end)
  assert_eq(ok, false)
  assert(string.find(err, "read-only", 1, true), err)
end
