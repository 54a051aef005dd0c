/**
 * luagate: Lua for Deno through the real Lua C library, as a trusted two-way bridge
 * (`LuaRuntime`), a sandbox for untrusted code under hard limits (`Sandbox`), and a policy engine
 * (`PolicyEngine`, `PolicyPool`).
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "@luagate/luagate";
 * using lua = new LuaRuntime();
 * console.log(lua.eval("1 + 1")); // 2
 * ```
 *
 * @module
 */

export { LuaRuntime } from "./lua/runtime.ts";
export type { CompileOptions, LuaRuntimeOptions } from "./lua/runtime.ts";
export { LuaCoroutine, LuaFunction, LuaTable, LuaUserdata } from "./lua/handles.ts";
export type { CoroutineStatus } from "./lua/handles.ts";
export { asAttrGetter, asItemGetter, luaType, unpacksLuaTable } from "./lua/interop.ts";
export type { LuaTypeName } from "./lua/interop.ts";
export { multipleValues } from "./lua/bridge.ts";
export type { MultipleValues } from "./lua/core.ts";
export type { AttributeFilter, AttributeHandlers } from "./lua/bridge.ts";
export {
  LuaError,
  LuaLimitError,
  LuaMemoryError,
  LuaStateError,
  LuaSyntaxError,
  PermissionDeniedError,
} from "./lua/errors.ts";
export type { LuaLimit } from "./lua/errors.ts";
export { LuaLibraryError } from "./ffi/library.ts";
export { Sandbox } from "./policy/sandbox.ts";
export type { Capability, CapabilityCall, CapabilitySpec, SandboxOptions, Usage } from "./policy/sandbox.ts";
export { DEFAULT_LIMITS } from "./policy/limits.ts";
export type { Limits } from "./policy/limits.ts";
export {
  allowList,
  AttributeDeniedError,
  combineFilters,
  denyList,
  denyPrototype,
  publicOnly,
  readOnly,
} from "./attribute_filters/filters.ts";
export { NotAPolicyError, Policy, PolicyEngine } from "./policy/engine.ts";
export type { PolicyEngineOptions, PolicyOptions } from "./policy/engine.ts";
export type { Decision, DecisionUsage } from "./policy/decision.ts";
export {
  PolicyPool,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
  PoolWorkerError,
} from "./policy/pool.ts";
export type { PolicyPoolOptions, PoolPolicySource } from "./policy/pool.ts";
export { DecisionLog, FileLogSink } from "./policy/decision_log.ts";
export type { DecisionLogEntry, DecisionLogOptions, DecisionLogSink } from "./policy/decision_log.ts";
