import assert from "node:assert/strict";
import { pinnedBlock, SLAB_BYTES } from "./pinned.ts";

function address(pointer: Deno.PointerObject): bigint {
  return Deno.UnsafePointer.value(pointer);
}

Deno.test("pinned blocks: zeroed, 16-byte aligned, apart, and where C reads them", () => {
  const blocks = [24, 96, 1, 32, 64, 17].map((bytes) => ({ bytes, block: pinnedBlock(bytes) }));
  const spans = blocks.map(({ bytes, block }) => ({
    start: address(block.pointer),
    end: address(block.pointer) + BigInt(bytes),
  }))
    .sort((a, b) => (a.start < b.start ? -1 : 1));
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1].end <= spans[i].start, "blocks overlap");
  for (const [i, { bytes, block }] of blocks.entries()) {
    assert.equal(address(block.pointer) % 16n, 0n);
    assert.equal(block.byteOffset % 16, 0);
    const view = new Uint8Array(block.buffer, block.byteOffset, bytes);
    assert.ok(view.every((byte) => byte === 0));
    view.fill(i + 1);
    const seen = new Deno.UnsafePointerView(block.pointer).getArrayBuffer(bytes);
    assert.deepEqual([...new Uint8Array(seen)], new Array(bytes).fill(i + 1));
  }
});

Deno.test("pinned blocks: writes through C's address show in the block's view", () => {
  const block = pinnedBlock(16);
  new BigUint64Array(new Deno.UnsafePointerView(block.pointer).getArrayBuffer(16))[1] = 0x1234_5678_9abcn;
  assert.equal(new BigUint64Array(block.buffer, block.byteOffset, 2)[1], 0x1234_5678_9abcn);
});

Deno.test("pinned blocks: small ones share a slab, a large one gets its own buffer", () => {
  const first = pinnedBlock(16);
  const second = pinnedBlock(16);
  const sameSlab = first.buffer === second.buffer;
  // the second starts a fresh slab only when the first ended one
  assert.ok(sameSlab || second.byteOffset === 0);
  if (sameSlab) {
    assert.equal(
      address(second.pointer) - address(first.pointer),
      BigInt(second.byteOffset - first.byteOffset),
    );
  }
  const large = pinnedBlock(SLAB_BYTES);
  assert.equal(large.byteOffset, 0);
  assert.equal(large.buffer.byteLength, SLAB_BYTES);
  assert.notEqual(large.buffer, pinnedBlock(16).buffer);
});

Deno.test("pinned blocks: a size that is not a positive integer is refused", () => {
  for (const bytes of [0, -8, 1.5, NaN, Infinity]) {
    assert.throws(() => pinnedBlock(bytes), RangeError);
  }
});
