-- A validating admission policy for Pods, fed AdmissionReview requests:
--   * no privileged containers (nor privilege escalation),
--   * every container sets resource limits (cpu and memory),
--   * images come from allowed registries and are pinned (no ":latest"),
--   * pods carry the required labels.
-- Namespaces listed in data.exempt_namespaces are admitted as they are.
-- The decision's reasons are the violations; a webhook returns them as the response's message.
local k8s = require("lib.k8s")

return function(review, data)
  local request = review.request
  if review.kind ~= "AdmissionReview" or type(request) ~= "table" then
    return false, "not an AdmissionReview request"
  end
  if request.kind == nil or request.kind.kind ~= "Pod" then
    return true, "not a pod: nothing to check"
  end
  if k8s.contains(data.exempt_namespaces, request.namespace) then
    return true, "namespace " .. request.namespace .. " is exempt"
  end
  if request.operation == "DELETE" then return true end

  local pod = request.object or {}
  local violations = {}
  local function violation(fmt, ...) violations[#violations + 1] = string.format(fmt, ...) end

  local labels = (pod.metadata or {}).labels or {}
  for _, label in ipairs(data.required_labels) do
    if labels[label] == nil then violation("pod is missing the label '%s'", label) end
  end

  for _, entry in ipairs(k8s.containers(pod.spec or {})) do
    local c = entry.container
    local name = tostring(c.name)
    local security = c.securityContext or {}
    if security.privileged then violation("container '%s' is privileged", name) end
    if security.allowPrivilegeEscalation then violation("container '%s' allows privilege escalation", name) end

    local limits = (c.resources or {}).limits or {}
    for _, resource in ipairs(data.required_limits) do
      if limits[resource] == nil then violation("container '%s' has no %s limit", name, resource) end
    end

    local image = tostring(c.image)
    local allowed = false
    for _, registry in ipairs(data.allowed_registries) do
      if k8s.starts_with(image, registry) then allowed = true break end
    end
    if not allowed then violation("container '%s' uses image '%s' from a registry that is not allowed", name, image) end
    if k8s.image_tag(image) == "latest" then violation("container '%s' uses an unpinned image (:latest)", name) end
  end

  return { allow = #violations == 0, reasons = violations }
end
