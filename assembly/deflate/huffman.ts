/**
 * Huffman code construction for deflate (RFC 1951 §3.2.2): length-limited code lengths from
 * symbol frequencies, and the canonical codes for given lengths, bit-reversed because deflate
 * sends Huffman codes most significant bit first into an LSB-first bit stream.
 * Works in scratch tables allocated once (init); nothing here allocates afterwards.
 */

/** Largest alphabet: 286 literal/length symbols (+2 unused) of RFC 1951 §3.2.5. */
const MAX_SYMBOLS = 288;

let sorted: usize = 0; // i32[MAX_SYMBOLS]: used symbols by ascending frequency
let weight: usize = 0; // i32[MAX_SYMBOLS]: the in-place tree of calculateLengths
let counts: usize = 0; // i32[MAX_SYMBOLS]: codes per length
let nextCode: usize = 0; // u32[16]

/** Allocates the scratch tables (once per instance). */
export function initHuffman(): void {
  if (sorted != 0) return;
  sorted = heap.alloc(MAX_SYMBOLS << 2);
  weight = heap.alloc(MAX_SYMBOLS << 2);
  counts = heap.alloc(MAX_SYMBOLS << 2);
  nextCode = heap.alloc(16 << 2);
}

function at(table: usize, i: i32): i32 {
  return load<i32>(table + ((<usize>i) << 2));
}

function put(table: usize, i: i32, v: i32): void {
  store<i32>(table + ((<usize>i) << 2), v);
}

/**
 * Code lengths (u8 per symbol into `lens`) for the `n` u32 frequencies at `freq`, none longer
 * than `limit`. At least two symbols always get a code (unused ones are given weight 1): zlib's
 * inflate rejects an incomplete code-length code, and a complete code is valid everywhere.
 */
export function buildLengths(freq: usize, n: i32, lens: usize, limit: i32): void {
  let m = 0;
  for (let i = 0; i < n; i++) {
    store<u8>(lens + <usize>i, 0);
    if (load<u32>(freq + ((<usize>i) << 2)) != 0) put(sorted, m++, i);
  }
  for (let i = 0; m < 2; i++) {
    if (load<u32>(freq + ((<usize>i) << 2)) == 0) put(sorted, m++, i);
  }
  sortByFrequency(freq, m);
  for (let i = 0; i < m; i++) {
    const f = load<u32>(freq + ((<usize>at(sorted, i)) << 2));
    put(weight, i, f == 0 ? 1 : <i32>f);
  }
  calculateLengths(m);
  // weight[i] is now the length of sorted[i]; weight[0] (the rarest) is the longest.
  const longest = at(weight, 0);
  for (let l = 0; l <= longest; l++) put(counts, l, 0);
  for (let i = 0; i < m; i++) put(counts, at(weight, i), at(counts, at(weight, i)) + 1);
  let top = longest;
  if (longest > limit) {
    limitLengths(longest, limit);
    top = limit;
  }
  // Longest codes to the rarest symbols.
  let s = 0;
  for (let l = top; l >= 1; l--) {
    for (let k = at(counts, l); k > 0; k--) store<u8>(lens + <usize>at(sorted, s++), <u8>l);
  }
}

/** Insertion sort of sorted[0..m) by frequency (m <= 288: cheap, and stable). */
function sortByFrequency(freq: usize, m: i32): void {
  for (let i = 1; i < m; i++) {
    const s = at(sorted, i);
    const f = load<u32>(freq + ((<usize>s) << 2));
    let j = i - 1;
    while (j >= 0 && load<u32>(freq + ((<usize>at(sorted, j)) << 2)) > f) {
      put(sorted, j + 1, at(sorted, j));
      j--;
    }
    put(sorted, j + 1, s);
  }
}

/**
 * Moffat and Katajainen's in-place minimum-redundancy code ("In-place calculation of
 * minimum-redundancy codes", 1995): weight[0..m) ascending in, code lengths out.
 */
function calculateLengths(m: i32): void {
  put(weight, 0, at(weight, 0) + at(weight, 1));
  let root = 0;
  let leaf = 2;
  for (let next = 1; next < m - 1; next++) {
    if (leaf >= m || at(weight, root) < at(weight, leaf)) {
      put(weight, next, at(weight, root));
      put(weight, root++, next);
    } else put(weight, next, at(weight, leaf++));
    if (leaf >= m || (root < next && at(weight, root) < at(weight, leaf))) {
      put(weight, next, at(weight, next) + at(weight, root));
      put(weight, root++, next);
    } else put(weight, next, at(weight, next) + at(weight, leaf++));
  }
  put(weight, m - 2, 0);
  for (let next = m - 3; next >= 0; next--) put(weight, next, at(weight, at(weight, next)) + 1);
  let avail = 1;
  let used = 0;
  let depth = 0;
  root = m - 2;
  let next = m - 1;
  while (avail > 0) {
    while (root >= 0 && at(weight, root) == depth) {
      used++;
      root--;
    }
    while (avail > used) {
      put(weight, next--, depth);
      avail--;
    }
    avail = 2 * used;
    depth++;
    used = 0;
  }
}

/**
 * Moves codes longer than `limit` up, keeping the code complete (the JPEG standard's
 * Adjust_BITS, ITU T.81 Annex K.3): two codes at the longest length become one a level up
 * plus two one level below a shorter code, which itself moves down.
 */
function limitLengths(longest: i32, limit: i32): void {
  for (let i = longest; i > limit; i--) {
    while (at(counts, i) > 0) {
      let j = i - 2;
      while (at(counts, j) == 0) j--;
      put(counts, i, at(counts, i) - 2);
      put(counts, i - 1, at(counts, i - 1) + 1);
      put(counts, j + 1, at(counts, j + 1) + 2);
      put(counts, j, at(counts, j) - 1);
    }
  }
}

/** Canonical codes (RFC 1951 §3.2.2), bit-reversed, u16 per symbol into `codes`. */
export function buildCodes(lens: usize, n: i32, codes: usize): void {
  for (let l = 0; l < 16; l++) put(nextCode, l, 0);
  for (let i = 0; i < n; i++) {
    const l = <i32>load<u8>(lens + <usize>i);
    put(nextCode, l, at(nextCode, l) + 1);
  }
  let code = 0;
  put(nextCode, 0, 0);
  // nextCode[l] turns from "count of length l" into "first code of length l".
  let prevCount = 0;
  for (let l = 1; l < 16; l++) {
    const c = at(nextCode, l);
    code = (code + prevCount) << 1;
    put(nextCode, l, code);
    prevCount = c;
  }
  for (let i = 0; i < n; i++) {
    const l = <i32>load<u8>(lens + <usize>i);
    if (l == 0) continue;
    const c = at(nextCode, l);
    put(nextCode, l, c + 1);
    store<u16>(codes + ((<usize>i) << 1), <u16>reverse(<u32>c, l));
  }
}

function reverse(code: u32, bits: i32): u32 {
  let r: u32 = 0;
  for (let i = 0; i < bits; i++) {
    r = (r << 1) | (code & 1);
    code >>= 1;
  }
  return r;
}
