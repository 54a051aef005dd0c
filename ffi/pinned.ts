/**
 * Small blocks of JS memory whose address C may keep: each state's allocator counters, run clock and
 * fast-lane tally, which native code reads and writes while JS reads them with plain typed-array
 * loads.
 *
 * A bare `ArrayBuffer` has an off-heap backing store that V8 never moves, so its address stays valid
 * for as long as the buffer lives. But a buffer of its own and its address cost about 6,700
 * instructions and 7,800 cycles in a tight loop (more in a state's start-up, among colder caches),
 * where a view of a buffer already made and its address cost 1,200 and 600. Blocks are therefore
 * carved from shared slabs of {@linkcode SLAB_BYTES}. A block is never handed out twice, and a slab
 * lives as long as a view of any of its blocks does, so an owner keeps its block alive by keeping
 * its view, as it kept its own buffer before. A long-lived block keeps its slab (4 KiB, the blocks
 * of some twenty states) until the collector frees it with the last view.
 *
 * @example Usage
 * ```ts
 * import { pinnedBlock } from "./pinned.ts";
 *
 * const block = pinnedBlock(32);
 * const fields = new Float64Array(block.buffer, block.byteOffset, 4);
 * fields[0] = 1.5;
 * // C code given block.pointer reads 1.5 there
 * ```
 *
 * @module
 */

/** The size of the buffers blocks are carved from; a larger block gets a buffer of its own. */
export const SLAB_BYTES = 4096;

// Every block starts on a 16-byte boundary: C structs of 8-byte fields, and views of them.
const BLOCK_ALIGNMENT = 16;

/** A block of pinned memory: where it is in its buffer, and its address for C. */
export interface PinnedBlock {
  /** The buffer the block is part of; views of the block keep it alive. */
  readonly buffer: ArrayBuffer;
  /** Where the block starts in {@linkcode PinnedBlock.buffer} (a multiple of 16). */
  readonly byteOffset: number;
  /** The block's address. */
  readonly pointer: Deno.PointerObject;
}

let slab: ArrayBuffer | undefined;
let slabAddress = 0n;
let slabUsed = SLAB_BYTES;

function ownBuffer(bytes: number): { buffer: ArrayBuffer; pointer: Deno.PointerObject } {
  const buffer = new ArrayBuffer(bytes);
  const pointer = Deno.UnsafePointer.of(buffer);
  if (pointer === null) throw new Error("luagate: no address for pinned memory");
  return { buffer, pointer };
}

/**
 * `bytes` bytes of zeroed memory that V8 never moves, for C to keep the address of.
 *
 * @example Usage
 * ```ts
 * import { pinnedBlock } from "./pinned.ts";
 * const { buffer, byteOffset } = pinnedBlock(16);
 * new BigUint64Array(buffer, byteOffset, 2)[1] = 7n;
 * ```
 *
 * @param bytes The block's size (at least 1).
 * @returns The block: its buffer, its offset there and its address.
 * @throws {RangeError} for a size that is not a positive integer.
 */
export function pinnedBlock(bytes: number): PinnedBlock {
  if (!Number.isInteger(bytes) || bytes < 1) {
    throw new RangeError(`a pinned block needs a positive size, not ${bytes}`);
  }
  const size = Math.ceil(bytes / BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT;
  if (size > SLAB_BYTES / 4) return { ...ownBuffer(size), byteOffset: 0 };
  if (slab === undefined || slabUsed + size > SLAB_BYTES) {
    const fresh = ownBuffer(SLAB_BYTES);
    slab = fresh.buffer;
    slabAddress = Deno.UnsafePointer.value(fresh.pointer);
    slabUsed = 0;
  }
  const byteOffset = slabUsed;
  slabUsed += size;
  const pointer = Deno.UnsafePointer.create(slabAddress + BigInt(byteOffset));
  if (pointer === null) throw new Error("luagate: no address for pinned memory");
  return { buffer: slab, byteOffset, pointer };
}
