import assert from "node:assert/strict";
import { openLibc } from "./libc.ts";
import { openEmbeddedLibrary } from "./native_code.ts";
import { toolMissing } from "../tests/fixtures/native_helpers.ts";

const onLinux = Deno.build.os === "linux";
const noCompiler = !onLinux || toolMissing("gcc");

/** A shared library exporting `int answer(void)` that returns `value`, built with gcc. */
async function libraryAnswering(value: number): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/answer.c`, `int answer(void) { return ${value}; }\n`);
    const built = await new Deno.Command("gcc", {
      args: ["-shared", "-fPIC", "-O2", "-o", `${dir}/answer.so`, `${dir}/answer.c`],
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    return await Deno.readFile(`${dir}/answer.so`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ANSWER = { answer: { parameters: [], result: "i32" } } as const;

Deno.test("openEmbeddedLibrary: each library opened from memory is its own, one after the other", {
  ignore: noCompiler,
}, async () => {
  const libc = openLibc();
  const answers = [];
  for (const value of [1, 2, 3]) {
    const library = openEmbeddedLibrary(libc, await libraryAnswering(value), ANSWER);
    assert.ok(library, "opened");
    answers.push(library.symbols.answer());
  }
  assert.deepEqual(answers, [1, 2, 3]);
});

Deno.test(
  "openEmbeddedLibrary: bytes that are not a shared library give undefined",
  { ignore: !onLinux },
  () => {
    const libc = openLibc();
    assert.equal(openEmbeddedLibrary(libc, new TextEncoder().encode("not an ELF file"), ANSWER), undefined);
    assert.equal(openEmbeddedLibrary(libc, new Uint8Array(0), ANSWER), undefined);
  },
);
