import { beforeAll, describe, expect, it } from 'vitest';
import { CHUNK, WasmIo } from '../../src/wasm/io.ts';
import { ensureWasmBuilt } from './ensure-built.ts';

let io: WasmIo;
beforeAll(async () => {
  ensureWasmBuilt();
  io = await WasmIo.load();
});

/** Deterministic bytes (xorshift32), so a failure reproduces. */
function randomBytes(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const refIsZero = (b: Uint8Array) => b.every((v) => v === 0);
const refVerify = (b: Uint8Array, p: number) => b.findIndex((v) => v !== p);

// Lengths around the 8- and 32-byte strides and the chunk boundary, where loops go wrong.
const LENGTHS = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 4095, 4096, 4097, CHUNK - 1, CHUNK, CHUNK + 13];

describe('isZero', () => {
  it('matches the reference on zero buffers with one byte set anywhere', () => {
    for (const len of LENGTHS) {
      expect(io.isZero(new Uint8Array(len)), `len ${len}`).toBe(true);
      for (const at of new Set([0, len >> 1, len - 8, len - 1].filter((i) => i >= 0))) {
        const buf = new Uint8Array(len);
        buf[at] = 0x80;
        expect(io.isZero(buf), `len ${len}, byte ${at}`).toBe(refIsZero(buf));
      }
    }
  });

  it('matches the reference on random buffers', () => {
    for (let seed = 1; seed < 50; seed++) {
      const buf = randomBytes(seed * 37, seed);
      expect(io.isZero(buf)).toBe(refIsZero(buf));
    }
  });
});

describe('verifyPattern', () => {
  it('returns -1 when every byte matches and the first mismatch otherwise', () => {
    for (const len of LENGTHS) {
      const buf = new Uint8Array(len).fill(0xa5);
      expect(io.verifyPattern(buf, 0xa5), `len ${len}`).toBe(-1);
      for (const at of new Set([0, 3, len >> 1, len - 9, len - 1].filter((i) => i >= 0 && i < len))) {
        const bad = buf.slice();
        bad[at] = 0xa4;
        bad[len - 1] = 0; // a later mismatch must not hide the first one
        expect(io.verifyPattern(bad, 0xa5), `len ${len}, byte ${at}`).toBe(refVerify(bad, 0xa5));
      }
    }
  });

  it('finds a mismatch past the first chunk at its offset in the whole buffer', () => {
    const buf = new Uint8Array(3 * CHUNK).fill(7);
    buf[2 * CHUNK + 5] = 8;
    expect(io.verifyPattern(buf, 7)).toBe(2 * CHUNK + 5);
  });

  it('matches the reference on random buffers and patterns', () => {
    for (let seed = 1; seed < 50; seed++) {
      const pattern = seed & 0xff;
      const buf = randomBytes(200, seed).map((v) => (v < 250 ? pattern : v));
      expect(io.verifyPattern(buf, pattern)).toBe(refVerify(buf, pattern));
    }
  });

  it('refuses a pattern that is not a byte', () => {
    expect(() => io.verifyPattern(new Uint8Array(1), 256)).toThrow(RangeError);
  });
});

describe('fillPattern', () => {
  it('sets exactly the given bytes', () => {
    for (const len of LENGTHS) {
      const buf = randomBytes(len + 2, len);
      const before = buf.slice();
      io.fillPattern(buf.subarray(1, len + 1), 0x5a);
      expect(buf[0]).toBe(before[0]);
      expect(buf[len + 1]).toBe(before[len + 1]);
      expect(refVerify(buf.subarray(1, len + 1), 0x5a), `len ${len}`).toBe(-1);
    }
  });
});

describe('copy', () => {
  it('moves overlapping ranges like memmove in both directions', () => {
    const n = 1000;
    const base = io.exports.scratch(2 * n) >>> 0;
    for (const [dst, src, len] of [
      [0, 3, 997],
      [3, 0, 997],
      [17, 500, 400],
      [500, 17, 400],
      [0, 0, 10],
    ] as const) {
      const data = randomBytes(2 * n, dst * 31 + src);
      io.bytes().set(data, base);
      io.exports.copy(base + dst, base + src, len);
      data.copyWithin(dst, src, src + len);
      expect(io.bytes().slice(base, base + 2 * n)).toEqual(data);
    }
  });
});

describe('memory growth', () => {
  it('keeps working when staging a large buffer grows memory and detaches old views', async () => {
    const fresh = await WasmIo.load();
    const before = fresh.bytes();
    const buf = new Uint8Array(CHUNK + 1);
    buf[CHUNK] = 1;
    expect(fresh.isZero(buf)).toBe(false);
    expect(before.byteLength).toBe(0); // detached: the module did grow
    expect(fresh.bytes().byteLength).toBeGreaterThan(CHUNK);
  });
});

describe('abort', () => {
  it("reports the module's own message and source position", async () => {
    const fresh = await WasmIo.load();
    // 0xfffffff0 bytes: beyond the stub runtime's largest block.
    expect(() => fresh.exports.scratch(0xfffffff0)).toThrow(
      /^blockgraph\.wasm aborted: Allocation too large at ~lib\/rt\/stub\.ts:\d+:\d+$/,
    );
  });
});
