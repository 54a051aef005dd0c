// fengari: a Lua 5.3 VM written in JavaScript (npm `fengari`). Note: Lua 5.3, not 5.4; the policy
// uses nothing that differs between the two.
// Fed the natural way for its C-like API: per request the harness builds a fresh Lua table tree with
// lua_createtable / lua_pushstring / lua_setfield / lua_rawseti, then lua_pcall(decide).
// Field-name keys are converted to Lua strings once (constants); string values are converted per
// request by lua_pushstring, as any caller holding JS strings would do.
import type { Engine, Request, Workload } from "./types.ts";
import { installedVersion, requirePeer } from "./npm.ts";

type LuaState = unknown;
type LuaString = Uint8Array;
/** The part of fengari's API the harnesses use. */
export interface FengariModule {
  FENGARI_RELEASE: string;
  to_luastring(s: string): LuaString;
  to_jsstring(s: LuaString): string;
  lua: {
    LUA_OK: number;
    LUA_REGISTRYINDEX: number;
    LUA_TSTRING: number;
    LUA_RELEASE: string;
    lua_createtable(L: LuaState, narr: number, nrec: number): void;
    lua_pushstring(L: LuaState, s: string | LuaString): void;
    lua_pushboolean(L: LuaState, b: boolean): void;
    lua_pushnil(L: LuaState): void;
    lua_pushcfunction(L: LuaState, f: (L: LuaState) => number): void;
    lua_pushinteger(L: LuaState, n: number): void;
    lua_pushnumber(L: LuaState, n: number): void;
    lua_setfield(L: LuaState, idx: number, k: LuaString | string): void;
    lua_getfield(L: LuaState, idx: number, k: LuaString | string): number;
    lua_rawseti(L: LuaState, idx: number, n: number): void;
    lua_rawgeti(L: LuaState, idx: number, n: number): number;
    lua_getglobal(L: LuaState, name: LuaString): number;
    lua_setglobal(L: LuaState, name: LuaString): void;
    lua_pcall(
      L: LuaState,
      nargs: number,
      nres: number,
      errfunc: number,
    ): number;
    lua_toboolean(L: LuaState, idx: number): boolean;
    lua_tostring(L: LuaState, idx: number): LuaString;
    lua_settop(L: LuaState, idx: number): void;
    lua_gettop(L: LuaState): number;
    lua_close(L: LuaState): void;
  };
  lauxlib: {
    luaL_newstate(): LuaState;
    luaL_dostring(L: LuaState, code: LuaString): number;
    luaL_ref(L: LuaState, t: number): number;
  };
  lualib: { luaL_openlibs(L: LuaState): void };
}

export function load(): Promise<Engine[]> {
  const fengari = requirePeer<FengariModule>("fengari");
  const { lua, lauxlib, lualib, to_luastring, to_jsstring } = fengari;
  const {
    lua_createtable,
    lua_pushstring,
    lua_pushboolean,
    lua_setfield,
    lua_rawseti,
    lua_rawgeti,
    lua_pcall,
    lua_toboolean,
    lua_settop,
    LUA_OK,
    LUA_REGISTRYINDEX,
  } = lua;
  const K = {
    user: to_luastring("user"),
    resource: to_luastring("resource"),
    action: to_luastring("action"),
    id: to_luastring("id"),
    roles: to_luastring("roles"),
    groups: to_luastring("groups"),
    suspended: to_luastring("suspended"),
    owner: to_luastring("owner"),
    visibility: to_luastring("visibility"),
    acl: to_luastring("acl"),
  };

  let L: LuaState | undefined;
  let decideRef = 0;
  let requests: Request[] = [];

  function pushStringArray(L: LuaState, items: string[]): void {
    lua_createtable(L, items.length, 0);
    for (let j = 0; j < items.length; j++) {
      lua_pushstring(L, items[j]);
      lua_rawseti(L, -2, j + 1);
    }
  }

  function pushRequest(L: LuaState, req: Request): void {
    const u = req.user, r = req.resource;
    lua_createtable(L, 0, 3);

    lua_createtable(L, 0, 4);
    lua_pushstring(L, u.id);
    lua_setfield(L, -2, K.id);
    pushStringArray(L, u.roles);
    lua_setfield(L, -2, K.roles);
    pushStringArray(L, u.groups);
    lua_setfield(L, -2, K.groups);
    lua_pushboolean(L, u.suspended);
    lua_setfield(L, -2, K.suspended);
    lua_setfield(L, -2, K.user);

    lua_createtable(L, 0, 4);
    lua_pushstring(L, r.id);
    lua_setfield(L, -2, K.id);
    lua_pushstring(L, r.owner);
    lua_setfield(L, -2, K.owner);
    lua_pushstring(L, r.visibility);
    lua_setfield(L, -2, K.visibility);
    lua_createtable(L, 0, 2);
    for (const g in r.acl) {
      lua_pushstring(L, r.acl[g]);
      lua_setfield(L, -2, g); // JS string key: converted by fengari
    }
    lua_setfield(L, -2, K.acl);
    lua_setfield(L, -2, K.resource);

    lua_pushstring(L, req.action);
    lua_setfield(L, -2, K.action);
  }

  const engine: Engine = {
    name: "fengari (Lua 5.3 in JS)",
    version: `fengari ${installedVersion("fengari")} (${lua.LUA_RELEASE})`,
    feed: "per request: Lua table built with lua_createtable/pushstring/setfield, then lua_pcall",
    setup(w: Workload) {
      requests = w.requests;
      L = lauxlib.luaL_newstate();
      lualib.luaL_openlibs(L);
      if (lauxlib.luaL_dostring(L, to_luastring(w.policyLua)) !== LUA_OK) {
        throw new Error("fengari: loading the policy failed: " + to_jsstring(lua.lua_tostring(L, -1)));
      }
      lua.lua_getglobal(L, to_luastring("decide"));
      decideRef = lauxlib.luaL_ref(L, LUA_REGISTRYINDEX);
      return Promise.resolve();
    },
    decide(i: number): boolean {
      const s = L!;
      lua_rawgeti(s, LUA_REGISTRYINDEX, decideRef);
      pushRequest(s, requests[i]);
      if (lua_pcall(s, 1, 1, 0) !== LUA_OK) {
        const msg = to_jsstring(lua.lua_tostring(s, -1));
        lua_settop(s, 0);
        throw new Error("fengari: decide failed: " + msg);
      }
      const allow = lua_toboolean(s, -1);
      lua_settop(s, 0);
      return allow;
    },
    close() {
      if (L) lua.lua_close(L);
      L = undefined;
    },
  };
  return Promise.resolve([engine]);
}
