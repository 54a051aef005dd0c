/**
 * Host functions of the quotas example. `usage(account)` reads the account's current usage from
 * the metering store (here: fixed numbers, so the example is deterministic). It needs the
 * permission `usage.read`, which luagate.json grants to the `quotas` policy only.
 *
 * This module is trusted host code: the CLI imports it (`capabilities` in luagate.json), a
 * `PolicyPool` imports it in each worker (`capabilitiesModule`).
 *
 * @module
 */

interface Usage {
  requests_today: number;
  storage_mb: number;
  projects: number;
}

const METERING: Record<string, Usage> = {
  ada: { requests_today: 1000, storage_mb: 120, projects: 2 },
  grace: { requests_today: 52_000, storage_mb: 49_990, projects: 12 },
  linus: { requests_today: 9_000_000, storage_mb: 2_000_000, projects: 400 },
  ken: { requests_today: 10, storage_mb: 499, projects: 3 },
};

export default {
  usage: {
    permission: "usage.read",
    fn: (account: string): Usage => {
      if (typeof account !== "string") throw new TypeError("usage(account): account must be a string");
      return METERING[account] ?? { requests_today: 0, storage_mb: 0, projects: 0 };
    },
  },
};
