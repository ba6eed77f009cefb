/**
 * Raw deflate (RFC 1951, no zlib header) with a 4 KiB window, for qcow2 compressed clusters.
 * QEMU inflates them with windowBits -12 (block/qcow2-threads.c, qcow2_zlib_decompress; the
 * compressor, qcow2_zlib_compress, uses deflateInit2 with -12 too), so no match may reach back
 * more than 4096 bytes.
 *
 * Matching is zlib's deflate_slow at its default level: hash chains of 3-byte prefixes, limited
 * chain walks, and lazy evaluation (a match is kept only if the next position does not start a
 * longer one). Blocks are written by block.ts.
 *
 * The host stages the input with deflateBuffer, calls deflateRaw and reads deflateOutput.
 */
import {
  MAX_DIST,
  MAX_SYMBOLS,
  SLACK,
  addLiteral,
  addMatch,
  finishOutput,
  flushBlock,
  initBlocks,
  overflow,
  startOutput,
  symCount,
} from './block';

const MIN_MATCH = 3;
const MAX_MATCH = 258;
const HASH_BITS: u32 = 15;
/** zlib level 6 (configuration_table in deflate.c): good_length, max_lazy, nice_length, max_chain. */
const GOOD_LENGTH = 8;
const MAX_LAZY = 16;
const NICE_LENGTH = 128;
const MAX_CHAIN = 128;
/** Bytes readable past the input's end: the hash and match loops load 4 and 8 bytes at a time. */
const PAD: usize = 16;

let head: usize = 0; // i32[1 << HASH_BITS]: newest position + 1 per hash, 0 = none
let prev: usize = 0; // i32[MAX_DIST]: the previous position + 1 with the same hash, by pos % MAX_DIST
let input: usize = 0;
let inputCap: usize = 0;
let output: usize = 0;
let outputCap: usize = 0;

/**
 * Returns where to put up to `len` bytes of input, with room for an output of `cap` bytes.
 * May grow memory (detaching the host's views).
 */
export function deflateBuffer(len: usize, cap: usize): usize {
  if (head == 0) {
    initBlocks();
    head = heap.alloc(((<usize>1) << HASH_BITS) << 2);
    prev = heap.alloc((<usize>MAX_DIST) << 2);
  }
  if (len > inputCap) {
    if (input != 0) heap.free(input);
    input = heap.alloc(len + PAD);
    inputCap = len;
  }
  if (cap > outputCap) {
    if (output != 0) heap.free(output);
    output = heap.alloc(cap + SLACK);
    outputCap = cap;
  }
  memory.fill(input + len, 0, PAD);
  return input;
}

/** Where deflateRaw left its output. */
export function deflateOutput(): usize {
  return output;
}

/**
 * Compresses the `len` bytes staged by deflateBuffer(len, >= cap) into one raw deflate stream
 * (BFINAL on its last block). Returns its length, or -1 if it would be longer than `cap` bytes.
 */
export function deflateRaw(len: usize, cap: usize): i32 {
  if (head == 0 || len > inputCap || cap > outputCap) return -1;
  memory.fill(head, 0, ((<usize>1) << HASH_BITS) << 2);
  startOutput(output, cap);
  const n = <i32>len;
  const src = input;
  let blockStart = 0;
  let consumed = 0;
  let pos = 0;
  let prevLen = 0;
  let prevDist = 0;
  let pending = false; // the byte at pos - 1 is not yet coded
  while (pos < n) {
    let curLen = 0;
    let curDist = 0;
    if (pos + MIN_MATCH <= n) {
      const cand = insert(src, pos);
      if (cand >= 0 && prevLen < MAX_LAZY) {
        const found = longestMatch(src, n, pos, cand, prevLen);
        curLen = found & 0xffff;
        curDist = found >>> 16;
      }
    }
    if (pending && prevLen >= MIN_MATCH && curLen <= prevLen) {
      addMatch(<u32>prevLen, <u32>prevDist);
      const end = pos - 1 + prevLen;
      const hashable = n - MIN_MATCH;
      for (let p = pos + 1; p < end && p <= hashable; p++) insert(src, p);
      consumed = end;
      pos = end;
      pending = false;
      prevLen = 0;
    } else {
      if (pending) {
        addLiteral(<u32>load<u8>(src + <usize>(pos - 1)));
        consumed = pos;
      }
      prevLen = curLen;
      prevDist = curDist;
      pending = true;
      pos++;
    }
    if (symCount >= MAX_SYMBOLS - 1) {
      flushBlock(src + <usize>blockStart, <usize>(consumed - blockStart), false);
      blockStart = consumed;
      if (overflow) return -1;
    }
  }
  if (pending) addLiteral(<u32>load<u8>(src + <usize>(n - 1)));
  flushBlock(src + <usize>blockStart, <usize>(n - blockStart), true);
  if (overflow) return -1;
  const size = finishOutput();
  return size > cap ? -1 : <i32>size;
}

/** Links position `pos` into its hash chain; returns the previous position with its hash, or -1. */
function insert(src: usize, pos: i32): i32 {
  const h = ((load<u32>(src + <usize>pos) & 0xffffff) * 0x9e3779b1) >> (32 - HASH_BITS);
  const slot = head + ((<usize>h) << 2);
  const cand = load<i32>(slot) - 1;
  store<i32>(slot, pos + 1);
  store<i32>(prev + ((<usize>(pos & (MAX_DIST - 1))) << 2), cand + 1);
  return cand;
}

/**
 * The longest match for `pos` among the chain from `cand` within MAX_DIST, longer than `prevLen`
 * and at least MIN_MATCH: (distance << 16) | length, or 0 if none.
 */
function longestMatch(src: usize, n: i32, pos: i32, cand: i32, prevLen: i32): i32 {
  let chain = prevLen >= GOOD_LENGTH ? MAX_CHAIN >> 2 : MAX_CHAIN;
  let best = prevLen < MIN_MATCH - 1 ? MIN_MATCH - 1 : prevLen;
  let bestDist = 0;
  const maxLen = n - pos < MAX_MATCH ? n - pos : MAX_MATCH;
  if (best >= maxLen) return 0;
  const limit = pos > MAX_DIST ? pos - MAX_DIST : 0;
  const here = src + <usize>pos;
  let c = cand;
  while (c >= limit) {
    const there = src + <usize>c;
    // Cheap rejections first: the byte that would make the match longer, then the first two.
    if (
      load<u8>(there + <usize>best) == load<u8>(here + <usize>best) &&
      load<u16>(there) == load<u16>(here)
    ) {
      const len = matchLength(there, here, maxLen);
      if (len > best) {
        best = len;
        bestDist = pos - c;
        if (len >= NICE_LENGTH || len >= maxLen) break;
      }
    }
    if (--chain == 0) break;
    const p = load<i32>(prev + ((<usize>(c & (MAX_DIST - 1))) << 2)) - 1;
    // A slot overwritten by a newer position, or the chain's end.
    if (p >= c) break;
    c = p;
  }
  return bestDist == 0 ? 0 : (bestDist << 16) | best;
}

/** Equal bytes at a and b, at most `max` (8 at a time: the first difference's byte from ctz). */
function matchLength(a: usize, b: usize, max: i32): i32 {
  let i = 0;
  while (i + 8 <= max) {
    const x = load<u64>(a + <usize>i) ^ load<u64>(b + <usize>i);
    if (x != 0) return i + <i32>(ctz(x) >> 3);
    i += 8;
  }
  while (i < max && load<u8>(a + <usize>i) == load<u8>(b + <usize>i)) i++;
  return i;
}
