-- Tests of the quota policies: `deno run -A cli.ts test examples/quotas`.

function test_free_plan_is_rate_limited()
  -- ada used all 1000 requests of the day (see capabilities.ts)
  assert_deny("quotas", { account = "ada", operation = "api_call" }, "requests_per_day quota exceeded")
end

function test_free_plan_upload_within_quota()
  assert_allow("quotas", { account = "ada", operation = "upload", size_mb = 380 })
  assert_deny("quotas", { account = "ada", operation = "upload", size_mb = 381 }, "storage_mb")
end

function test_project_limit()
  assert_deny("quotas", { account = "ken", operation = "create_project" }, "projects quota exceeded on plan free")
  assert_allow("quotas", { account = "ada", operation = "create_project" })
end

function test_enterprise_is_unlimited()
  assert_allow("quotas", { account = "linus", operation = "upload", size_mb = 1e6 })
end

function test_unknown_account_and_operation()
  assert_deny("quotas", { account = "eve", operation = "api_call" }, "unknown account eve")
  assert_deny("quotas", { account = "ada", operation = "mine_bitcoin" }, "unknown operation")
end

function test_usage_is_audited()
  local d = decide("quotas", { account = "grace", operation = "api_call" })
  assert_eq(d.allow, true)
  assert_eq(#d.calls, 1)
  assert_eq(d.calls[1].name, "usage")
  assert_eq(d.calls[1].ok, true)
end

function test_usage_needs_permission()
  -- status_page is not granted usage.read: the call is denied and the decision fails closed,
  -- although the policy wraps it in pcall
  local d = assert_error("status_page", { account = "ada" }, "PermissionDeniedError")
  assert_eq(d.calls[1].ok, false)
end
