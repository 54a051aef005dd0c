-- The shared ABAC benchmark workload (bench/, /work/shared/bench/abac_workload.ts) as a policy:
-- owners, admins, public reads and group ACLs. Used by the pool demo and the benchmarks.
local function contains(xs, x)
  for _, v in ipairs(xs) do if v == x then return true end end
  return false
end

return function(input)
  local u, r, a = input.user, input.resource, input.action
  if u.suspended then return false end
  if contains(u.roles, "admin") then return true end
  if r.owner == u.id then return true end
  if a == "read" and r.visibility == "public" then return true end
  for _, g in ipairs(u.groups) do
    if r.acl[g] == a then return true end
  end
  return false
end
