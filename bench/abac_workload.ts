// A copy of the shared ABAC workload (../shared/bench/abac_workload.ts), so benchmarks run from a clone alone.
// A shared attribute-based access control workload, for side-by-side benchmarks.
// POLICY_LUA defines a global `decide(input)`; policy engines can wrap it as a decision function.
export const POLICY_LUA = `
function decide(input)
  local u, r, a = input.user, input.resource, input.action
  if u.suspended then return false end
  for _, role in ipairs(u.roles) do if role == "admin" then return true end end
  if r.owner == u.id then return true end
  if a == "read" and r.visibility == "public" then return true end
  for _, g in ipairs(u.groups) do
    if r.acl[g] == a then return true end
  end
  return false
end`;

export interface Request {
  user: { id: string; roles: string[]; groups: string[]; suspended: boolean };
  resource: { id: string; owner: string; visibility: string; acl: Record<string, string> };
  action: string;
}

/** Deterministic requests: the same n gives the same list on every machine. */
export function makeRequests(n: number): Request[] {
  const reqs: Request[] = [];
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const actions = ["read", "write", "delete"];
  for (let i = 0; i < n; i++) {
    const uid = "u" + Math.floor(rnd() * 50);
    const groups = ["g" + Math.floor(rnd() * 10), "g" + Math.floor(rnd() * 10)];
    const acl: Record<string, string> = {};
    acl["g" + Math.floor(rnd() * 10)] = actions[Math.floor(rnd() * 3)];
    acl["g" + Math.floor(rnd() * 10)] = actions[Math.floor(rnd() * 3)];
    reqs.push({
      user: { id: uid, roles: rnd() < 0.05 ? ["admin", "dev"] : ["dev"], groups, suspended: rnd() < 0.05 },
      resource: {
        id: "r" + i,
        owner: "u" + Math.floor(rnd() * 50),
        visibility: rnd() < 0.3 ? "public" : "private",
        acl,
      },
      action: actions[Math.floor(rnd() * 3)],
    });
  }
  return reqs;
}

/** The reference answer in plain JS: every engine must agree with it on every request. */
export function decideJS(input: Request): boolean {
  const u = input.user, r = input.resource, a = input.action;
  if (u.suspended) return false;
  if (u.roles.includes("admin")) return true;
  if (r.owner === u.id) return true;
  if (a === "read" && r.visibility === "public") return true;
  for (const g of u.groups) if (r.acl[g] === a) return true;
  return false;
}
