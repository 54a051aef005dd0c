/**
 * Switches read from the environment, which the test passes use to take the paths other platforms
 * take: `LUAGATE_NO_NATIVE_CODE=1` (no embedded machine code, as on macOS, Windows and Linux on other
 * architectures), `LUAGATE_JS_ALLOCATOR=1`, `LUAGATE_JS_DATA=1`, `LUAGATE_FORCE_PROTECTED=1`,
 * `LUAGATE_NO_STATE_IMAGES=1` (every sandbox's state built, none copied).
 *
 * @module
 */

const switches = new Map<string, boolean>();

/**
 * Whether the environment variable `name` is `"1"`, read once per process; `false` without
 * `--allow-env` (a switch never asks for the permission).
 *
 * @example Usage
 * ```ts
 * import { switchedOn } from "./switches.ts";
 *
 * console.log(switchedOn("LUAGATE_NO_NATIVE_CODE")); // false unless the variable is "1"
 * ```
 *
 * @param name The environment variable.
 * @returns whether it is set to `"1"`.
 */
export function switchedOn(name: string): boolean {
  let on = switches.get(name);
  if (on === undefined) {
    try {
      on = Deno.permissions.querySync({ name: "env", variable: name }).state === "granted" &&
        Deno.env.get(name) === "1";
    } catch {
      on = false;
    }
    switches.set(name, on);
  }
  return on;
}
