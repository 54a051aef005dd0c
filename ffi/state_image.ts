/**
 * State images: a Lua state built once into a region of memory of its own, then copied into other
 * regions, each copy a state of its own. Copying and relocating the template's memory costs a few
 * microseconds, where building a sandbox's state costs a hundred.
 *
 * **How a copy is made valid.** Every region lies at the same offset of its own 4 GiB slot, so a
 * copy differs from its template in the high half of its addresses only. Lua hashes a pointer by
 * its low 32 bits, so every table keyed by tables or functions keeps its layout. Relocating is
 * rewriting the high half of every 64-bit word of the image that points into the template's
 * region; those words are found once, when the image is taken.
 *
 * **Why no other word is taken for a pointer.** A word is relocated when its high half is the
 * template's slot and its low half lies in the template's range. Template slots are chosen so that
 * nothing but a pointer in a template can read so (`TEMPLATE_SLOTS`):
 *
 * - the slot's low byte (0x7f, or 0xf5 to 0xff) makes an opcode neither Lua 5.3 (its low 6 bits, 47
 *   opcodes) nor 5.4 (its low 7 bits, 83 opcodes) has, so no pair of instructions reads as one;
 * - its high byte, 0x10 to 0x1f, is a control character that never occurs in luagate's own Lua code,
 *   the only strings a template holds (the sandbox's globals are defined in each copy), and its low
 *   byte is DEL or no byte of UTF-8 at all;
 * - as a double it is subnormal, which luagate's code never computes; as an integer it is over 2^44,
 *   larger than any integer a template of luagate's holds (it is built with the default limits);
 * - the range's low half is at least 0x2900_0000: the counts, sizes and type bytes that share a word
 *   with a hash or a count in Lua's structures (string lengths at most 40, node sizes) stay below it.
 *
 * Linux only (`MAP_FIXED_NOREPLACE`, 64-bit address spaces of 47 bits or more); elsewhere, or when
 * a slot cannot be mapped, {@linkcode mapTemplateRegion} returns `undefined` and states are built.
 *
 * @example
 * ```ts
 * import { mapTemplateRegion, StateImage, takeCopyRegion } from "./state_image.ts";
 *
 * const template = mapTemplateRegion(4096);
 * if (template) {
 *   new BigUint64Array(template.buffer)[0] = template.address + 8n; // a pointer into the region
 *   const image = new StateImage(template, 16);
 *   const copy = takeCopyRegion(image.bytes)!;
 *   image.copyInto(copy);
 *   console.log(new BigUint64Array(copy.buffer)[0] === copy.address + 8n); // true
 * }
 * ```
 *
 * @module
 */

import { mapPrivateAnonymous, openLibc, PROT_READ, PROT_WRITE } from "./libc.ts";
import { runsEmbeddedCode } from "./native_code.ts";
import type { PinnedBlock } from "./pinned.ts";
import { switchedOn } from "./switches.ts";

/** Memory at a fixed address: a template's or a copy's. */
export interface ImageRegion {
  /** Where the region begins. */
  readonly address: bigint;
  /** Its size, a multiple of the page size. */
  readonly bytes: number;
  /** The region's memory. */
  readonly buffer: ArrayBuffer;
  /** The high half of every address in the region: its 4 GiB slot. */
  readonly slot: number;
}

// a region's offset in its slot is a multiple of the largest page size (aarch64 kernels may use
// 64 KiB pages); its length is rounded to 4 KiB pages, which a larger page size rounds further
const SLOT_ALIGNMENT = 65536;
const PAGE_BYTES = 4096;
// MAP_FIXED_NOREPLACE (Linux 4.17): the address or nothing; older kernels take it as a hint, which
// the address check below refuses. MAP_POPULATE: the pages are made at once, not on first touch.
const MAP_FIXED_NOREPLACE = 0x100000;
const MAP_POPULATE = 0x8000;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/** The slots templates may take: 0x107f, 0x10f5 to 0x10ff, 0x117f, ... (see the module's documentation). */
const TEMPLATE_SLOTS = Array.from(
  { length: 16 },
  (_, high) =>
    [0x7f, ...Array.from({ length: 11 }, (_, i) => 0xf5 + i)].map((low) => ((0x10 + high) << 8) | low),
).flat();

/** Whether a slot (an address's high 32 bits) is one templates may take. */
export function isTemplateSlot(slot: number): boolean {
  return TEMPLATE_SLOTS.includes(slot);
}

// copies take slots from here on (up to 0x7000, under the 47-bit user address space's top)
const FIRST_COPY_SLOT = 0x2000;
const COPY_SLOTS = 0x5000;
// the offset of every region in its slot: at least 0x2900_0000 (see above), a page multiple, drawn
// once per isolate
const REGION_OFFSET = 0x4000_0000 + SLOT_ALIGNMENT * Math.floor(Math.random() * 0x2000);

let nextCopySlot = FIRST_COPY_SLOT + Math.floor(Math.random() * COPY_SLOTS);
const freeCopies: ImageRegion[] = [];
/** The most released copy regions an isolate keeps for the next copies. */
const KEPT_COPIES = 8;

/** Whether regions can be mapped here at all (and `LUAGATE_NO_STATE_IMAGES=1` does not forbid it). */
export function imageRegionsSupported(): boolean {
  return runsEmbeddedCode() && Deno.build.os === "linux" && !switchedOn("LUAGATE_NO_STATE_IMAGES");
}

function pageRound(bytes: number): number {
  return Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
}

// populate: make the pages at once (a copy's, which a copy writes all of)
function mapAt(slot: number, bytes: number, populate: boolean): ImageRegion | undefined {
  const libc = openLibc();
  const address = (BigInt(slot) << 32n) + BigInt(REGION_OFFSET);
  const flags = mapPrivateAnonymous() | MAP_FIXED_NOREPLACE | (populate ? MAP_POPULATE : 0);
  const mapped = libc.mmap(
    Deno.UnsafePointer.create(address),
    BigInt(bytes),
    PROT_READ | PROT_WRITE,
    flags,
    -1,
    0n,
  );
  const at = mapped === null ? 0n : Deno.UnsafePointer.value(mapped);
  if (at === MAP_FAILED || at === 0n) return undefined;
  if (at !== address) {
    libc.munmap(mapped, BigInt(bytes));
    return undefined;
  }
  return { address, bytes, buffer: new Deno.UnsafePointerView(mapped!).getArrayBuffer(bytes), slot };
}

/**
 * Maps a region for a template of at most `bytes` (rounded up to pages) in one of the template
 * slots; `undefined` when none is free or this system has no fixed mappings.
 */
export function mapTemplateRegion(bytes: number): ImageRegion | undefined {
  if (!imageRegionsSupported()) return undefined;
  for (const slot of TEMPLATE_SLOTS) {
    const region = mapAt(slot, pageRound(bytes), false);
    if (region) return region;
  }
  return undefined;
}

/**
 * A region for a copy of `bytes`: one a closed copy released, or a new one; `undefined` when
 * none can be mapped.
 */
export function takeCopyRegion(bytes: number): ImageRegion | undefined {
  const kept = freeCopies.findLastIndex((region) => region.bytes >= bytes);
  if (kept >= 0) return freeCopies.splice(kept, 1)[0];
  if (!imageRegionsSupported()) return undefined;
  // a slot something else holds is passed over; a few failures in a row mean no slot will do
  for (let tries = 0; tries < 8; tries++) {
    const slot = nextCopySlot;
    nextCopySlot = slot + 1 < FIRST_COPY_SLOT + COPY_SLOTS ? slot + 1 : FIRST_COPY_SLOT;
    const region = mapAt(slot, pageRound(bytes), true);
    if (region) return region;
  }
  return undefined;
}

/**
 * Gives back a region whose state is closed: nothing may point into it any more. A copy's is kept
 * for the next copy (its pages already made) unless enough are kept; a template's is unmapped.
 */
export function releaseRegion(region: ImageRegion): void {
  if (!isTemplateSlot(region.slot) && freeCopies.length < KEPT_COPIES) {
    freeCopies.push(region);
    return;
  }
  unmap(region);
}

/** Unmaps the regions closed copies left for the next ones (an isolate about to end). */
export function unmapKeptRegions(): void {
  for (const region of freeCopies.splice(0)) unmap(region);
}

function unmap(region: ImageRegion): void {
  openLibc().munmap(Deno.UnsafePointer.create(region.address), BigInt(region.bytes));
}

/** `bytes` of a region at `offset`, as a block of memory that never moves. */
export function regionBlock(region: ImageRegion, offset: number): PinnedBlock {
  return {
    buffer: region.buffer,
    byteOffset: offset,
    pointer: Deno.UnsafePointer.create(region.address + BigInt(offset))!,
  };
}

/**
 * The first `bytes` of a template's region, taken as they are now, and where its pointers are: the
 * template must not change afterwards.
 */
export class StateImage {
  /** The image's size in bytes. */
  readonly bytes: number;
  /** The template's region. */
  readonly template: ImageRegion;
  // the index in 32-bit words of the high half of every word that points into the image
  readonly #pointers: Uint32Array;

  constructor(template: ImageRegion, bytes: number) {
    if (!isTemplateSlot(template.slot)) {
      throw new RangeError("an image is taken of a template region only");
    }
    if (!(bytes > 0 && bytes <= template.bytes && bytes % 8 === 0)) {
      throw new RangeError(`an image of ${bytes} bytes does not fit its region of ${template.bytes}`);
    }
    this.template = template;
    this.bytes = bytes;
    const words = new Uint32Array(template.buffer, 0, bytes / 4);
    const low = REGION_OFFSET;
    const found: number[] = [];
    // a pointer to the end of the last block is a pointer too
    for (let i = 1; i < words.length; i += 2) {
      if (words[i] === template.slot && words[i - 1] - low <= bytes && words[i - 1] >= low) found.push(i);
    }
    this.#pointers = Uint32Array.from(found);
  }

  /** How many words point into the image. */
  get pointers(): number {
    return this.#pointers.length;
  }

  /** Copies the image into `region`, its pointers pointing into `region`. */
  copyInto(region: ImageRegion): void {
    if (region.bytes < this.bytes) throw new RangeError("the region is smaller than the image");
    const words = new Uint32Array(region.buffer, 0, this.bytes / 4);
    words.set(new Uint32Array(this.template.buffer, 0, this.bytes / 4));
    const slot = region.slot;
    const pointers = this.#pointers;
    for (let i = 0; i < pointers.length; i++) words[pointers[i]] = slot;
  }

  /** The address in `region` of the template's `address`. */
  relocated(address: bigint, region: ImageRegion): bigint {
    return address - this.template.address + region.address;
  }
}
