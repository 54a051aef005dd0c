/**
 * Capabilities of the pool demo (examples/demo.ts), imported inside each pool worker through
 * `PolicyPool`'s `capabilitiesModule`: a directory lookup that hangs for one user, the way a host
 * function stuck on a dead backend would. The Lua limits cannot stop host code; the pool's watchdog
 * can.
 *
 * @module
 */

export default {
  directory: (user: string): { active: boolean } => {
    if (user === "hangs") {
      const until = Date.now() + 800;
      while (Date.now() < until) {
        // a backend that never answers (for 800 ms, so that the demo ends soon after)
      }
    }
    return { active: user !== "mallory" };
  },
};
