/**
 * Deflate block output (RFC 1951 §3.2.3-3.2.7): symbols collected by the match finder (lz77.ts)
 * are written as one block of whichever kind is smallest for them (stored, fixed Huffman or
 * dynamic Huffman), into an output buffer bounded by a byte limit: past it the encoder gives up,
 * as qcow2 only stores a compressed cluster that is smaller than the cluster.
 */
import { buildCodes, buildLengths, initHuffman } from './huffman';

/** Symbols per block (zlib's lit_bufsize with memLevel 8). */
export const MAX_SYMBOLS: i32 = 16384;
const LITLEN_CODES = 286;
const DIST_CODES = 30;
const CODELEN_CODES = 19;
const END_OF_BLOCK = 256;

// RFC 1951 §3.2.5: length codes 257..285 and distance codes 0..29, base values and extra bits.
const LEN_BASE: StaticArray<u16> = [
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
  227, 258,
];
const LEN_EXTRA: StaticArray<u8> = [
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: StaticArray<u16> = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
  6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: StaticArray<u8> = [
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
];
/** The order code length code lengths are sent in (RFC 1951 §3.2.7). */
const CODELEN_ORDER: StaticArray<u8> = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Largest match distance the tables cover (the 4 KiB window). */
export const MAX_DIST: i32 = 4096;

// Lookup tables, filled by initBlocks.
let lenSym: usize = 0; // u16[259]: match length -> length code (257..285)
let distSym: usize = 0; // u8[MAX_DIST + 1]: distance -> distance code
// Per block: symbols (u32: distance << 16 | length, or a literal with distance 0) and frequencies.
let syms: usize = 0;
export let symCount: i32 = 0;
let litFreq: usize = 0; // u32[288]
let distFreq: usize = 0; // u32[30]
// Code tables: dynamic (built per block) and fixed (built once); lens u8, codes u16.
let litLens: usize = 0;
let litCodes: usize = 0;
let distLens: usize = 0;
let distCodes: usize = 0;
let fixedLitLens: usize = 0;
let fixedLitCodes: usize = 0;
let fixedDistLens: usize = 0;
let fixedDistCodes: usize = 0;
// The dynamic header: code-length symbols (u16: extra << 8 | symbol) and their code.
let lengths: usize = 0; // u8[316]: literal/length then distance code lengths
let rle: usize = 0;
let rleCount: i32 = 0;
let clFreq: usize = 0;
let clLens: usize = 0;
let clCodes: usize = 0;

// The output: bits are collected LSB first in a 64-bit accumulator.
let out: usize = 0;
export let outPos: usize = 0;
let outLimit: usize = 0;
let bitBuf: u64 = 0;
let bitCount: u32 = 0;
/** The output went past its limit: the encoder stops. */
export let overflow: bool = false;

/** Allocates the tables (once per instance). */
export function initBlocks(): void {
  if (syms != 0) return;
  initHuffman();
  syms = heap.alloc((<usize>MAX_SYMBOLS) << 2);
  litFreq = heap.alloc(288 << 2);
  distFreq = heap.alloc(DIST_CODES << 2);
  litLens = heap.alloc(288);
  litCodes = heap.alloc(288 << 1);
  distLens = heap.alloc(DIST_CODES);
  distCodes = heap.alloc(DIST_CODES << 1);
  fixedLitLens = heap.alloc(288);
  fixedLitCodes = heap.alloc(288 << 1);
  fixedDistLens = heap.alloc(DIST_CODES);
  fixedDistCodes = heap.alloc(DIST_CODES << 1);
  lengths = heap.alloc(LITLEN_CODES + DIST_CODES);
  rle = heap.alloc((LITLEN_CODES + DIST_CODES) << 1);
  clFreq = heap.alloc(CODELEN_CODES << 2);
  clLens = heap.alloc(CODELEN_CODES);
  clCodes = heap.alloc(CODELEN_CODES << 1);
  lenSym = heap.alloc(259 << 1);
  distSym = heap.alloc(<usize>(MAX_DIST + 1));
  for (let code = 0; code < 29; code++) {
    const base = <i32>unchecked(LEN_BASE[code]);
    const last = code == 28 ? 258 : <i32>unchecked(LEN_BASE[code + 1]) - 1;
    for (let l = base; l <= last; l++) store<u16>(lenSym + ((<usize>l) << 1), <u16>(257 + code));
  }
  for (let code = 0; code < 24; code++) {
    const base = <i32>unchecked(DIST_BASE[code]);
    const last = <i32>unchecked(DIST_BASE[code + 1]) - 1;
    for (let d = base; d <= last && d <= MAX_DIST; d++) store<u8>(distSym + <usize>d, <u8>code);
  }
  // RFC 1951 §3.2.6.
  for (let i = 0; i < 288; i++)
    store<u8>(fixedLitLens + <usize>i, i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
  for (let i = 0; i < DIST_CODES; i++) store<u8>(fixedDistLens + <usize>i, 5);
  buildCodes(fixedLitLens, 288, fixedLitCodes);
  buildCodes(fixedDistLens, DIST_CODES, fixedDistCodes);
}

/** Starts an output of at most `limit` bytes at `dst` (which has room for limit + SLACK). */
export function startOutput(dst: usize, limit: usize): void {
  out = dst;
  outPos = 0;
  outLimit = limit;
  bitBuf = 0;
  bitCount = 0;
  overflow = false;
  startBlock();
}

/** Bytes the output buffer needs past the limit: one block header and a symbol's bits. */
export const SLACK: usize = 512;

function startBlock(): void {
  symCount = 0;
  memory.fill(litFreq, 0, 288 << 2);
  memory.fill(distFreq, 0, DIST_CODES << 2);
}

function bump(table: usize, i: u32): void {
  const p = table + ((<usize>i) << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/** Adds a literal byte to the block. */
export function addLiteral(byte: u32): void {
  store<u32>(syms + ((<usize>symCount) << 2), byte);
  symCount++;
  bump(litFreq, byte);
}

/** Adds a match of `len` (3..258) bytes at distance `dist` (1..MAX_DIST). */
export function addMatch(len: u32, dist: u32): void {
  store<u32>(syms + ((<usize>symCount) << 2), (dist << 16) | len);
  symCount++;
  bump(litFreq, <u32>load<u16>(lenSym + ((<usize>len) << 1)));
  bump(distFreq, <u32>load<u8>(distSym + <usize>dist));
}

function putBits(value: u32, n: u32): void {
  bitBuf |= (<u64>value) << bitCount;
  bitCount += n;
  if (bitCount >= 32) {
    store<u32>(out + outPos, <u32>bitBuf);
    outPos += 4;
    bitBuf >>= 32;
    bitCount -= 32;
  }
}

/** Pads to a byte boundary and writes out the whole bytes held. */
function alignOutput(): void {
  bitCount = (bitCount + 7) & ~7;
  while (bitCount > 0) {
    store<u8>(out + outPos, <u8>bitBuf);
    outPos++;
    bitBuf >>= 8;
    bitCount -= 8;
  }
}

/** Ends the output: the last partial byte written. Returns the output length. */
export function finishOutput(): usize {
  alignOutput();
  return outPos;
}

/**
 * Writes the collected symbols as one block covering source bytes [src, src + bytes), `last`
 * setting BFINAL, and starts the next block. Sets `overflow` when past the limit.
 */
export function flushBlock(src: usize, bytes: usize, last: bool): void {
  store<u32>(litFreq + (END_OF_BLOCK << 2), 1);
  buildLengths(litFreq, LITLEN_CODES, litLens, 15);
  buildLengths(distFreq, DIST_CODES, distLens, 15);
  const header = dynamicHeader();
  const dynamicBits = header + dataBits(litLens, distLens);
  const fixedBits = dataBits(fixedLitLens, fixedDistLens);
  const chunks = (bytes + 65534) / 65535;
  const storedBits = <u64>bytes * 8 + <u64>(chunks == 0 ? 1 : chunks) * 40;
  const fin: u32 = last ? 1 : 0;
  if (storedBits <= fixedBits && storedBits <= dynamicBits) writeStored(src, bytes, fin);
  else if (fixedBits <= dynamicBits) {
    putBits(fin | (1 << 1), 3);
    writeSymbols(fixedLitLens, fixedLitCodes, fixedDistLens, fixedDistCodes);
  } else {
    buildCodes(litLens, LITLEN_CODES, litCodes);
    buildCodes(distLens, DIST_CODES, distCodes);
    putBits(fin | (2 << 1), 3);
    writeDynamicHeader();
    writeSymbols(litLens, litCodes, distLens, distCodes);
  }
  if (outPos > outLimit) overflow = true;
  startBlock();
}

/** Bits the block's symbols take with these code lengths, extra bits included. */
function dataBits(lits: usize, dists: usize): u64 {
  let bits: u64 = 0;
  for (let i = 0; i < LITLEN_CODES; i++) {
    const f = <u64>load<u32>(litFreq + ((<usize>i) << 2));
    if (f == 0) continue;
    let per = <u64>load<u8>(lits + <usize>i);
    if (i > END_OF_BLOCK) per += <u64>unchecked(LEN_EXTRA[i - 257]);
    bits += f * per;
  }
  for (let i = 0; i < DIST_CODES; i++) {
    const f = <u64>load<u32>(distFreq + ((<usize>i) << 2));
    if (f != 0) bits += f * (<u64>load<u8>(dists + <usize>i) + <u64>unchecked(DIST_EXTRA[i]));
  }
  return bits;
}

/**
 * Prepares the dynamic block header (RFC 1951 §3.2.7): the code lengths run-length coded with
 * symbols 16 (repeat the previous 3-6 times), 17 (3-10 zeros) and 18 (11-138 zeros), and the
 * code for those symbols. Returns the header's size in bits (the 3 block-type bits excluded).
 */
function dynamicHeader(): u64 {
  const hlit = usedCodes(litLens, LITLEN_CODES, 257);
  const hdist = usedCodes(distLens, DIST_CODES, 1);
  memory.copy(lengths, litLens, <usize>hlit);
  memory.copy(lengths + <usize>hlit, distLens, <usize>hdist);
  runLengths(hlit + hdist);
  memory.fill(clFreq, 0, CODELEN_CODES << 2);
  for (let i = 0; i < rleCount; i++) bump(clFreq, <u32>(load<u16>(rle + ((<usize>i) << 1)) & 0xff));
  buildLengths(clFreq, CODELEN_CODES, clLens, 7);
  let bits: u64 = 14 + 3 * <u64>codeLengthCount();
  for (let i = 0; i < rleCount; i++) {
    const sym = <i32>(load<u16>(rle + ((<usize>i) << 1)) & 0xff);
    bits += <u64>load<u8>(clLens + <usize>sym) + <u64>(sym == 16 ? 2 : sym == 17 ? 3 : sym == 18 ? 7 : 0);
  }
  return bits;
}

/** How many of the first codes must be sent: up to the last with a length, at least `min`. */
function usedCodes(lens: usize, n: i32, min: i32): i32 {
  let used = n;
  while (used > min && load<u8>(lens + <usize>(used - 1)) == 0) used--;
  return used;
}

/** The number of code length code lengths to send (HCLEN + 4): trailing zeros in CODELEN_ORDER dropped. */
function codeLengthCount(): i32 {
  let n = CODELEN_CODES;
  while (n > 4 && load<u8>(clLens + <usize>unchecked(CODELEN_ORDER[n - 1])) == 0) n--;
  return n;
}

function pushRle(sym: u32, extra: u32): void {
  store<u16>(rle + ((<usize>rleCount) << 1), <u16>((extra << 8) | sym));
  rleCount++;
}

/** Run-length codes the `n` code lengths at `lengths` into `rle`. */
function runLengths(n: i32): void {
  rleCount = 0;
  let i = 0;
  while (i < n) {
    const l = <u32>load<u8>(lengths + <usize>i);
    let run = 1;
    while (i + run < n && <u32>load<u8>(lengths + <usize>(i + run)) == l) run++;
    i += run;
    if (l == 0) {
      while (run >= 11) {
        const r = run < 138 ? run : 138;
        pushRle(18, <u32>(r - 11));
        run -= r;
      }
      if (run >= 3) {
        pushRle(17, <u32>(run - 3));
        run = 0;
      }
    } else {
      pushRle(l, 0);
      run--;
      while (run >= 3) {
        const r = run < 6 ? run : 6;
        pushRle(16, <u32>(r - 3));
        run -= r;
      }
    }
    for (; run > 0; run--) pushRle(l, 0);
  }
}

function writeDynamicHeader(): void {
  buildCodes(clLens, CODELEN_CODES, clCodes);
  const hclen = codeLengthCount();
  putBits(<u32>(usedCodes(litLens, LITLEN_CODES, 257) - 257), 5);
  putBits(<u32>(usedCodes(distLens, DIST_CODES, 1) - 1), 5);
  putBits(<u32>(hclen - 4), 4);
  for (let i = 0; i < hclen; i++) putBits(<u32>load<u8>(clLens + <usize>unchecked(CODELEN_ORDER[i])), 3);
  for (let i = 0; i < rleCount; i++) {
    const v = <u32>load<u16>(rle + ((<usize>i) << 1));
    const sym = v & 0xff;
    putBits(<u32>load<u16>(clCodes + ((<usize>sym) << 1)), <u32>load<u8>(clLens + <usize>sym));
    if (sym >= 16) putBits(v >> 8, sym == 16 ? 2 : sym == 17 ? 3 : 7);
  }
}

/** The block's symbols and its end-of-block code; stops early once past the limit. */
function writeSymbols(lits: usize, litCodeTable: usize, dists: usize, distCodeTable: usize): void {
  for (let i = 0; i < symCount; i++) {
    const s = load<u32>(syms + ((<usize>i) << 2));
    const dist = s >> 16;
    if (dist == 0) {
      putBits(<u32>load<u16>(litCodeTable + ((<usize>s) << 1)), <u32>load<u8>(lits + <usize>s));
    } else {
      const len = s & 0xffff;
      const ls = <i32>load<u16>(lenSym + ((<usize>len) << 1));
      putBits(<u32>load<u16>(litCodeTable + ((<usize>ls) << 1)), <u32>load<u8>(lits + <usize>ls));
      const le = <u32>unchecked(LEN_EXTRA[ls - 257]);
      if (le != 0) putBits(len - <u32>unchecked(LEN_BASE[ls - 257]), le);
      const ds = <i32>load<u8>(distSym + <usize>dist);
      putBits(<u32>load<u16>(distCodeTable + ((<usize>ds) << 1)), <u32>load<u8>(dists + <usize>ds));
      const de = <u32>unchecked(DIST_EXTRA[ds]);
      if (de != 0) putBits(dist - <u32>unchecked(DIST_BASE[ds]), de);
    }
    if (outPos > outLimit) {
      overflow = true;
      return;
    }
  }
  putBits(<u32>load<u16>(litCodeTable + (END_OF_BLOCK << 1)), <u32>load<u8>(lits + END_OF_BLOCK));
}

/** Stored blocks (RFC 1951 §3.2.4) of at most 65535 bytes each. */
function writeStored(src: usize, bytes: usize, fin: u32): void {
  let done: usize = 0;
  do {
    const n = bytes - done < 65535 ? bytes - done : 65535;
    const lastChunk = done + n == bytes;
    putBits(lastChunk ? fin : 0, 3);
    alignOutput();
    if (outPos + 4 + n > outLimit) {
      overflow = true;
      return;
    }
    store<u16>(out + outPos, <u16>n);
    store<u16>(out + outPos + 2, <u16>~n);
    memory.copy(out + outPos + 4, src + done, n);
    outPos += 4 + n;
    done += n;
  } while (done < bytes);
}
