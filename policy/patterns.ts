/** Placeholder until the stepped matcher lands. */
export const PATTERNS_LUA: string = "return nil";
