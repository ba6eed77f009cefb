/**
 * The 4 KiB-window raw deflate encoder (assembly/deflate/, src/wasm/deflate.ts): every stream
 * must inflate bit-exact with zlib at windowBits 12, as QEMU inflates qcow2 clusters
 * (inflateInit2 with -12), across random, zero, text-like, sparse, repetitive and incompressible
 * inputs; a stream that would not fit its cap is refused.
 */
import { inflateRawSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { deflateRaw } from '../../src/wasm/deflate.ts';
import { instantiateBlockgraph, type BlockgraphExports } from '../../src/wasm/load.ts';
import { ensureWasmBuilt } from './ensure-built.ts';

let wasm: BlockgraphExports;
beforeAll(async () => {
  ensureWasmBuilt();
  wasm = await instantiateBlockgraph();
});

/** xorshift32: reproducible inputs. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const WORDS = ['the ', 'qcow2 ', 'cluster ', 'refcount ', 'L2 ', 'table\n', 'zero ', 'data '];
const KINDS = ['random', 'zero', 'text', 'sparse', 'repeat', 'runs'] as const;

function input(kind: (typeof KINDS)[number], n: number, rnd: () => number): Uint8Array {
  const d = new Uint8Array(n);
  switch (kind) {
    case 'random':
      for (let i = 0; i < n; i++) d[i] = rnd() * 256;
      break;
    case 'zero':
      break;
    case 'text':
      for (let i = 0; i < n;)
        for (const ch of WORDS[(rnd() * WORDS.length) | 0]) if (i < n) d[i++] = ch.charCodeAt(0);
      break;
    case 'sparse':
      for (let i = 0; i < n; i++) d[i] = rnd() < 0.9 ? 0 : rnd() * 256;
      break;
    case 'repeat': {
      // Repeats at periods around and beyond the window: matches must stop at 4096 back.
      const period = 1 + ((rnd() * 6000) | 0);
      for (let i = 0; i < n; i++) d[i] = i < period ? rnd() * 256 : d[i - period] ^ (rnd() < 0.01 ? 1 : 0);
      break;
    }
    case 'runs':
      for (let i = 0; i < n;) {
        const b = rnd() * 4;
        for (let r = (rnd() * 300) | 0; r > 0 && i < n; r--) d[i++] = b;
      }
  }
  return d;
}

function roundTrip(data: Uint8Array): Uint8Array {
  const z = deflateRaw(wasm, data, data.length + 1024);
  if (!z) throw new Error(`no stream for ${data.length} bytes`);
  return new Uint8Array(inflateRawSync(z, { windowBits: 12 }));
}

describe('deflateRaw', () => {
  it('inflates bit-exact at windowBits 12: 3000 fuzz cases of every kind and size', () => {
    const rnd = rng(7);
    for (let c = 0; c < 3000; c++) {
      const kind = KINDS[c % KINDS.length];
      // Small sizes exhaustively, then mostly up to 8 KiB, and every tenth case up to 70 KiB.
      const n = c < 300 ? c : c % 10 === 0 ? (rnd() * 70000) | 0 : (rnd() * 8192) | 0;
      const data = input(kind, n, rnd);
      const back = roundTrip(data);
      if (back.length !== n || Buffer.compare(back, data) !== 0) {
        throw new Error(`case ${c}: ${kind}, ${n} bytes did not round-trip`);
      }
    }
  });

  it.each([4096, 65536, 2 << 20])('round-trips whole clusters of %i bytes', (size) => {
    const rnd = rng(size);
    for (const kind of KINDS) {
      const data = input(kind, size, rnd);
      expect(Buffer.compare(roundTrip(data), data)).toBe(0);
    }
  });

  it('compresses about as well as zlib at its default level', async () => {
    const { deflateRawSync } = await import('node:zlib');
    const rnd = rng(3);
    const data = input('text', 65536, rnd);
    const ours = deflateRaw(wasm, data, 65535)!.length;
    const zlib = deflateRawSync(data, { windowBits: 12 }).length;
    expect(ours).toBeLessThan(zlib * 1.05);
    expect(deflateRaw(wasm, new Uint8Array(65536), 65535)!.length).toBeLessThan(100);
  });

  it('refuses output beyond the cap (incompressible data), then works again', () => {
    const data = input('random', 65536, rng(5));
    expect(deflateRaw(wasm, data, 65535)).toBeNull();
    expect(deflateRaw(wasm, data.subarray(0, 100), 10)).toBeNull();
    // A stored fallback fits when the cap allows it.
    const stored = deflateRaw(wasm, data, 65536 + 64)!;
    expect(Buffer.compare(inflateRawSync(stored, { windowBits: 12 }), data)).toBe(0);
    const text = input('text', 65536, rng(6));
    expect(Buffer.compare(roundTrip(text), text)).toBe(0);
  });
});
