-- Tests of the ABAC policies: `deno run -A cli.ts test examples/abac`.
local function request(overrides)
  local r = {
    subject = { id = "u3", department = "finance", clearance = "confidential", suspended = false },
    resource = { id = "doc", owner = "u7", department = "finance", classification = "confidential" },
    action = "read",
    env = { hour = 10 },
  }
  for section, fields in pairs(overrides or {}) do
    if type(fields) == "table" then
      for k, v in pairs(fields) do r[section][k] = v end
    else
      r[section] = fields
    end
  end
  return r
end

function test_same_department_with_clearance_reads()
  assert_allow("abac", request())
end

function test_owner_always_allowed()
  assert_allow("abac", request({ subject = { id = "u7", clearance = "public" }, action = "write", env = { hour = 3 } }))
end

function test_clearance_too_low()
  assert_deny("abac", request({ subject = { clearance = "internal" } }), "clearance internal is below confidential")
end

function test_unknown_clearance_fails_closed()
  assert_deny("abac", request({ subject = { clearance = "ultra" } }), "clearance ultra")
end

function test_other_department()
  assert_deny("abac", request({ subject = { department = "sales" } }), "department finance")
end

function test_public_documents_cross_departments()
  assert_allow("abac", request({ subject = { department = "sales", clearance = "public" },
    resource = { classification = "public" } }))
end

function test_writes_only_in_office_hours()
  assert_allow("abac", request({ action = "write", env = { hour = 9 } }))
  local d = assert_deny("abac", request({ action = "write", env = { hour = 19 } }))
  assert_eq(d.reasons, { "writes are allowed from 07:00 to 19:00" })
end

function test_every_reason_is_reported()
  local d = decide("abac", request({ subject = { department = "sales", clearance = "internal" }, action = "delete" }))
  assert_eq(d.allow, false)
  assert_eq(#d.reasons, 3)
end

function test_suspended_subject()
  assert_deny("abac", request({ subject = { suspended = true } }), "suspended")
end

function test_workload_policy()
  local base = {
    user = { id = "u1", roles = { "dev" }, groups = { "g1" }, suspended = false },
    resource = { id = "r", owner = "u2", visibility = "private", acl = { g1 = "read" } },
    action = "read",
  }
  assert_allow("workload", base)
  base.action = "write"
  assert_deny("workload", base)
  base.user.roles = { "admin" }
  assert_allow("workload", base)
end
