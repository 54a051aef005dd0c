-- Helpers over Kubernetes objects shared by the admission policies.
local M = {}

-- Every container of a pod spec, init containers included, as { kind, container } pairs.
function M.containers(spec)
  local all = {}
  for _, field in ipairs({ "initContainers", "containers", "ephemeralContainers" }) do
    for _, c in ipairs(spec[field] or {}) do all[#all + 1] = { kind = field, container = c } end
  end
  return all
end

-- Whether `s` starts with `prefix` (plain text, no patterns).
function M.starts_with(s, prefix)
  return string.sub(s, 1, #prefix) == prefix
end

-- The tag of an image reference ("nginx:1.25" -> "1.25"; none -> "latest"; digests -> nil).
function M.image_tag(image)
  if string.find(image, "@", 1, true) then return nil end
  local last = string.match(image, "[^/]+$") or image
  return string.match(last, ":([^:]+)$") or "latest"
end

-- Whether `xs` contains `x`.
function M.contains(xs, x)
  for _, v in ipairs(xs or {}) do if v == x then return true end end
  return false
end

return M
