// cedar-wasm: the Cedar authorization engine compiled to WebAssembly (npm `@cedar-policy/cedar-wasm`,
// its ESM build, which Deno imports directly, .wasm module included).
//
// The ABAC rules written the natural Cedar way:
//   - roles are entity parents (User in Role::"admin"), so "admin" is `principal in Role::"admin"`;
//   - the resource's ACL {g3 = "read"} is an attribute set of "group:action" strings ["g3:read"];
//   - the request's group-actions ("g1:write" for each of the user's groups and the requested action)
//     are in the context, so the ACL rule is `resource.acl.containsAny(context.groupActions)`
//     (Cedar has no quantifier over a set and no dynamic record indexing).
// The policy set is parsed once (preparsePolicySet); each decision includes building that request's
// entities and context from the JS request, plus statefulIsAuthorized.
import type { Engine, Request, Workload } from "./types.ts";
import { importPeer, installedVersion } from "./npm.ts";

export const CEDAR_POLICIES = `
// Suspended users are denied everything (forbid overrides every permit).
forbid (principal, action, resource) when { principal.suspended };

// Admins may do anything.
permit (principal in Role::"admin", action, resource);

// Owners may do anything with their resources.
permit (principal, action, resource) when { resource.owner == principal };

// Anyone may read a public resource.
permit (principal, action == Action::"read", resource) when { resource.visibility == "public" };

// A group of the user is granted exactly this action in the resource's ACL.
permit (principal, action, resource) when { resource.acl.containsAny(context.groupActions) };
`;

type Uid = { type: string; id: string };
type CedarValue = unknown;
interface EntityJson {
  uid: Uid;
  attrs: Record<string, CedarValue>;
  parents: Uid[];
}
interface Call {
  principal: Uid;
  action: Uid;
  resource: Uid;
  context: Record<string, CedarValue>;
  entities: EntityJson[];
}
type Answer =
  | { type: "success"; response: { decision: "allow" | "deny"; diagnostics: unknown } }
  | { type: "failure"; errors: { message: string }[] };
interface CedarModule {
  getCedarVersion(): string;
  preparsePolicySet(id: string, policies: { staticPolicies: string }): { type: string; errors?: unknown };
  statefulIsAuthorized(call: Call & { preparsedPolicySetId: string }): Answer;
  isAuthorized(call: Call & { policies: { staticPolicies: string } }): Answer;
}

const PSET_ID = "abac";

/** Builds the Cedar request (principal, action, resource, context, entities) for one ABAC request. */
export function cedarCall(req: Request): Call {
  const u = req.user, r = req.resource, a = req.action;
  const principal = { type: "User", id: u.id };
  const resource = { type: "Resource", id: r.id };
  const roles: Uid[] = [];
  for (const role of u.roles) roles.push({ type: "Role", id: role });
  const acl: string[] = [];
  for (const g in r.acl) acl.push(g + ":" + r.acl[g]);
  const groupActions: string[] = [];
  for (const g of u.groups) groupActions.push(g + ":" + a);
  return {
    principal,
    action: { type: "Action", id: a },
    resource,
    context: { groupActions },
    entities: [
      { uid: principal, attrs: { suspended: u.suspended }, parents: roles },
      {
        uid: resource,
        attrs: { owner: { __entity: { type: "User", id: r.owner } }, visibility: r.visibility, acl },
        parents: [],
      },
    ],
  };
}

function allowed(answer: Answer): boolean {
  if (answer.type !== "success") throw new Error("cedar: " + answer.errors.map((e) => e.message).join("; "));
  return answer.response.decision === "allow";
}

export async function load(): Promise<Engine[]> {
  const cedar = await importPeer<CedarModule>("@cedar-policy/cedar-wasm/esm/cedar_wasm.js");
  const version = `cedar-wasm ${
    installedVersion("@cedar-policy/cedar-wasm")
  } (Cedar ${cedar.getCedarVersion()})`;
  let requests: Request[] = [];

  const preparsed: Engine = {
    name: "cedar-wasm (pre-parsed policies)",
    version,
    feed: "per request: entities + context built from the JS request, statefulIsAuthorized",
    setup(w: Workload) {
      requests = w.requests;
      const parsed = cedar.preparsePolicySet(PSET_ID, { staticPolicies: CEDAR_POLICIES });
      if (parsed.type !== "success") throw new Error("cedar: policy parse failed: " + JSON.stringify(parsed));
      return Promise.resolve();
    },
    decide(i: number): boolean {
      const call = cedarCall(requests[i]) as Call & { preparsedPolicySetId: string };
      call.preparsedPolicySetId = PSET_ID;
      return allowed(cedar.statefulIsAuthorized(call));
    },
    close() {},
  };

  const perCall: Engine = {
    name: "cedar-wasm (isAuthorized, parses policies per call)",
    version,
    feed: "as above, but isAuthorized with the policy text: parse cost in every decision",
    setup(w: Workload) {
      requests = w.requests;
      return Promise.resolve();
    },
    decide(i: number): boolean {
      const call = cedarCall(requests[i]) as Call & { policies: { staticPolicies: string } };
      call.policies = { staticPolicies: CEDAR_POLICIES };
      return allowed(cedar.isAuthorized(call));
    },
    close() {},
  };

  return [preparsed, perCall];
}
