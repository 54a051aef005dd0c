-- A public status page policy. It is *not* granted `usage.read`, so its call to `usage` is denied
-- and the decision fails closed with a PermissionDeniedError, even though it wraps the call in
-- pcall: a denial cannot be caught by policy code.
return function(input)
  local ok, used = pcall(usage, input.account)
  if ok then return true, "usage visible" end
  return true, "usage hidden"
end
