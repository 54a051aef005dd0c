import assert from "node:assert/strict";
import {
  type ImageRegion,
  imageRegionsSupported,
  mapTemplateRegion,
  releaseRegion,
  StateImage,
  takeCopyRegion,
} from "./state_image.ts";

const unsupported = !imageRegionsSupported();

// a template's region and a copy's of `bytes`, released after `use`
function withRegions(bytes: number, use: (template: ImageRegion, copy: ImageRegion) => void): void {
  const template = mapTemplateRegion(bytes)!;
  const copy = takeCopyRegion(bytes)!;
  try {
    use(template, copy);
  } finally {
    releaseRegion(template);
    releaseRegion(copy);
  }
}

Deno.test("state images: regions lie at one offset of their slots, templates in their own slots", {
  ignore: unsupported,
}, () =>
  withRegions(10_000, (template, copy) => {
    assert.equal(template.bytes, 12_288);
    assert.equal(template.address >> 32n, BigInt(template.slot));
    const low = template.slot & 0xff;
    assert.ok(low === 0x7f || low >= 0xf5, `low byte ${low}`);
    // an opcode neither 5.3 nor 5.4 has
    assert.ok((low & 0x3f) >= 47 && (low & 0x7f) >= 83);
    assert.ok(template.slot >> 8 >= 0x10 && template.slot >> 8 <= 0x1f);
    assert.equal(copy.address >> 32n, BigInt(copy.slot));
    assert.ok(copy.slot >= 0x2000 && copy.slot < 0x7000);
    const offset = template.address & 0xffff_ffffn;
    assert.equal(copy.address & 0xffff_ffffn, offset);
    assert.ok(offset >= 0x2900_0000n && offset % 65536n === 0n);
  }));

Deno.test("state images: the words that point into the image are relocated, and nothing else", {
  ignore: unsupported,
}, () =>
  withRegions(4096, (template, copy) => {
    const words = new BigUint64Array(template.buffer, 0, 16);
    const base = template.address;
    const high = BigInt(template.slot) << 32n;
    const kept = [
      42n, // an integer
      0x4045_0000_0000_0000n, // 42.0
      high, // the slot's high half, low half below the region
      base - 8n, // just before the image
      base + 129n, // just past its end
      0x0012_7f00_0000_0000n + (base & 0xffff_ffffn), // another slot's address
      0x6362_6100_6665_6463n, // string bytes
    ];
    const relocated = [base, base + 8n, base + 127n, base + 128n];
    words.set([...relocated, ...kept, 0xffff_ffff_ffff_ffffn]);
    const image = new StateImage(template, 128);
    assert.equal(image.bytes, 128);
    assert.equal(image.pointers, relocated.length);
    new Uint8Array(copy.buffer, 0, 256).fill(0xaa);
    image.copyInto(copy);
    const copied = new BigUint64Array(copy.buffer, 0, 16);
    assert.deepEqual([...copied.subarray(0, 4)], relocated.map((address) => image.relocated(address, copy)));
    assert.deepEqual([...copied.subarray(4, 11)], kept);
    assert.equal(copied[11], 0xffff_ffff_ffff_ffffn);
    assert.equal(copied[0], copy.address);
    // past the image: not copied
    assert.equal(new Uint8Array(copy.buffer)[128], 0xaa);
    // the template is untouched
    assert.equal(words[0], base);
  }));

Deno.test(
  "state images: bad sizes and regions are refused",
  { ignore: unsupported },
  () =>
    withRegions(4096, (template, copy) => {
      assert.throws(() => new StateImage(template, 0), RangeError);
      assert.throws(() => new StateImage(template, 12), RangeError);
      assert.throws(() => new StateImage(template, 8192), RangeError);
      assert.throws(() => new StateImage(copy, 8), RangeError);
      const image = new StateImage(template, 4096);
      const small = new StateImage(template, 8);
      small.copyInto(copy);
      const large = mapTemplateRegion(copy.bytes + 8)!;
      try {
        assert.throws(() => new StateImage(large, copy.bytes + 8).copyInto(copy), RangeError);
      } finally {
        releaseRegion(large);
      }
      image.copyInto(copy);
    }),
);

Deno.test("state images: a released copy region serves the next copy; a template's is unmapped", {
  ignore: unsupported,
}, () => {
  const first = takeCopyRegion(5000)!;
  releaseRegion(first);
  const again = takeCopyRegion(4000)!;
  assert.equal(again.address, first.address);
  const larger = takeCopyRegion(first.bytes + 1)!;
  assert.notEqual(larger.address, first.address);
  releaseRegion(again);
  releaseRegion(larger);
  const template = mapTemplateRegion(4096)!;
  releaseRegion(template);
  const next = mapTemplateRegion(4096)!;
  // the slot is free again: the same address is mapped anew
  assert.equal(next.address, template.address);
  releaseRegion(next);
});

Deno.test("LUAGATE_NO_STATE_IMAGES=1 turns state images off", { ignore: unsupported }, async () => {
  const probe = `
    import { mapTemplateRegion, takeCopyRegion } from ${
    JSON.stringify(new URL("state_image.ts", import.meta.url).href)
  };
    console.log(mapTemplateRegion(4096) === undefined, takeCopyRegion(4096) === undefined);
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", probe],
    env: { LUAGATE_NO_STATE_IMAGES: "1" },
  }).output();
  assert.equal(new TextDecoder().decode(output.stdout), "true true\n");
});
