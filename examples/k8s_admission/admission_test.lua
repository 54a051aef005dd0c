-- Tests of the admission policy: `deno run -A cli.ts test examples/k8s_admission`.
local function container(name, image, extra)
  local c = { name = name, image = image, resources = { limits = { cpu = "500m", memory = "256Mi" } } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function review(containers, options)
  options = options or {}
  return {
    apiVersion = "admission.k8s.io/v1",
    kind = "AdmissionReview",
    request = {
      uid = "test",
      kind = { group = "", version = "v1", kind = options.kind or "Pod" },
      namespace = options.namespace or "payments",
      operation = options.operation or "CREATE",
      object = {
        metadata = { name = "p", labels = options.labels or { team = "payments" } },
        spec = { containers = containers, initContainers = options.init },
      },
    },
  }
end

local GOOD = "registry.example.com/payments/api:1.4.2"

function test_compliant_pod_is_admitted()
  assert_allow("admission", review({ container("api", GOOD) }))
end

function test_privileged_container_is_denied()
  assert_deny("admission", review({ container("api", GOOD, { securityContext = { privileged = true } }) }),
    "container 'api' is privileged")
end

function test_privilege_escalation_is_denied()
  assert_deny("admission",
    review({ container("api", GOOD, { securityContext = { allowPrivilegeEscalation = true } }) }),
    "allows privilege escalation")
end

function test_limits_are_required()
  local d = assert_deny("admission", review({ container("api", GOOD, { resources = {} }) }))
  assert_eq(d.reasons, { "container 'api' has no cpu limit", "container 'api' has no memory limit" })
end

function test_init_containers_are_checked()
  assert_deny("admission", review({ container("api", GOOD) }, { init = { container("init", "quay.io/x/y:1") } }),
    "container 'init' uses image 'quay.io/x/y:1'")
end

function test_registries_and_tags()
  assert_allow("admission", review({ container("a", "ghcr.io/acme/tool:2.1") }))
  assert_deny("admission", review({ container("a", "ghcr.io/evil/tool:2.1") }), "not allowed")
  assert_deny("admission", review({ container("a", "registry.example.com/app") }), "unpinned image")
  assert_deny("admission", review({ container("a", "registry.example.com/app:latest") }), "unpinned image")
  assert_allow("admission", review({ container("a", "registry.example.com/app@sha256:0123abcd") }))
end

function test_required_label()
  assert_deny("admission", review({ container("api", GOOD) }, { labels = {} }), "missing the label 'team'")
end

function test_exempt_namespace_and_other_kinds()
  local privileged = container("p", "k8s.gcr.io/kube-proxy", { securityContext = { privileged = true } })
  assert_allow("admission", review({ privileged }, { namespace = "kube-system" }))
  assert_allow("admission", review({ privileged }, { kind = "ConfigMap" }))
end

function test_malformed_review_is_denied()
  assert_deny("admission", { kind = "Pod" }, "not an AdmissionReview")
end

function test_every_violation_is_listed()
  local bad = container("x", "docker.io/x", { securityContext = { privileged = true }, resources = {} })
  local d = decide("admission", review({ bad }, { labels = {} }))
  assert_eq(d.allow, false)
  assert_eq(#d.reasons, 6)
end
