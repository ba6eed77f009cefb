/**
 * A structure-aware fuzzer for the qcow2 read path. Small seed images made by qemu-img/qemu-io are
 * broken where it matters (header fields, L1 and L2 entries, extended L2 bitmaps, compressed
 * descriptors, the refcount table and blocks, header extensions, the file length) with a fixed
 * PRNG seed, opened from a memory node, and read wherever blockStatus says something is mapped.
 * Every failure must be a typed error (a QmpError); a TypeError, RangeError, wasm trap or abort,
 * a hang (watchdog) or wasm memory beyond MEMORY_CAP fails the test with a reproducer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QmpError } from '../../../../src/block/errors.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import { HEADER, interestingValue, layoutOf, Prng, setBe, type Layout } from './mutate.ts';

const CASES_PER_SEED = 5_000;
const WATCHDOG_MS = 2_000;
const MEMORY_CAP = 64 * 1024 * 1024;
/** Bounds on the work one case may do, so a mutated 2^60-byte disk stays a quick case. */
const MAX_STATUS_CALLS = 256;
const MAX_READ = 256 * 1024;

/**
 * The wasm memories instantiated during the current case, to check the cap (the engine takes one
 * instance per image). Emptied before each case so old instances can be collected.
 */
const memories: WebAssembly.Memory[] = [];
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = (async (...args: Parameters<typeof instantiate>) => {
  const result = (await instantiate(...args)) as
    WebAssembly.Instance | WebAssembly.WebAssemblyInstantiatedSource;
  const instance = 'instance' in result ? result.instance : result;
  const memory = instance.exports.memory;
  if (memory instanceof WebAssembly.Memory) memories.push(memory);
  return result;
}) as typeof instantiate;
afterAll(() => void (WebAssembly.instantiate = instantiate));

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-qcow2-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Seeds: small files with every structure present at least once. */
const SEEDS: Record<string, { create: string; io: string[] }> = {
  'v3-512': {
    create: 'cluster_size=512',
    io: ['write -P 1 0 3000', 'write -P 2 300k 70k', 'write -z 200k 4k', 'write -c -P 3 700k 512'],
  },
  'v2-4k': { create: 'compat=0.10,cluster_size=4k', io: ['write -P 1 4k 10k', 'write -c -P 2 512k 4k'] },
  'v3-4k-zstd-refcount-1': {
    create: 'cluster_size=4k,compression_type=zstd,refcount_bits=1',
    io: ['write -P 1 0 8k', 'write -c -P 2 64k 4k', 'write -z 900k 8k', 'discard 4k 4k'],
  },
  'extended-l2-16k': {
    create: 'cluster_size=16k,extended_l2=on',
    io: [
      'write -P 1 0 1k',
      'write -z 2k 1k',
      'write -P 2 100k 16k',
      'write -c -P 3 512k 16k',
      'write -z 800k 5k',
    ],
  },
};

function makeSeed(name: string): Uint8Array {
  const path = join(dir, `${name}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', SEEDS[name]!.create, path, '1M']);
  execFileSync('qemu-io', ['-f', 'qcow2', ...SEEDS[name]!.io.flatMap((c) => ['-c', c]), path]);
  return new Uint8Array(readFileSync(path));
}

/** One change to the bytes: what was hit, where, and the new value (or the new file length). */
interface Mutation {
  what: string;
  at: number;
  width: 4 | 8 | 0;
  value: bigint;
}

/** Picks 1-3 mutations of the structures `layout` found in the seed. */
function mutations(rng: Prng, img: Uint8Array, layout: Layout): Mutation[] {
  const targets: [string, readonly number[], 4 | 8][] = [
    ['l1', layout.l1, 8],
    ['l2', layout.l2, 8],
    ['l2-bitmap', layout.l2Bitmaps, 8],
    ['compressed', layout.compressed, 8],
    ['refcount-table', layout.refcountTable, 8],
    ['refcount-block', layout.refcountBlocks.map((b) => b + 8 * rng.below(layout.clusterSize / 8)), 8],
    ['extension-type', layout.extensions, 4],
    ['extension-length', layout.extensions.map((e) => e + 4), 4],
  ];
  const out: Mutation[] = [];
  for (let n = 1 + rng.below(3); n > 0; n--) {
    const kind = rng.below(10);
    if (kind < 3) {
      const field = rng.pick(layout.fields);
      const [at, width] = HEADER[field];
      out.push({
        what: field,
        at,
        width,
        value: interestingValue(rng, read(img, at, width), img.length, layout.clusterSize),
      });
    } else if (kind === 9) {
      out.push({ what: 'truncate', at: 0, width: 0, value: BigInt(rng.below(img.length)) });
    } else {
      const [what, places, width] = rng.pick(targets.filter(([, p]) => p.length > 0));
      const at = rng.pick(places);
      out.push({
        what,
        at,
        width,
        value: interestingValue(rng, read(img, at, width), img.length, layout.clusterSize),
      });
    }
  }
  return out;
}

function read(img: Uint8Array, at: number, width: 4 | 8): bigint {
  const view = new DataView(img.buffer, img.byteOffset);
  return width === 8 ? view.getBigUint64(at) : BigInt(view.getUint32(at));
}

function apply(seed: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let img = seed.slice();
  for (const m of muts) {
    if (m.width === 0) img = img.slice(0, Number(m.value));
    else if (m.at + m.width <= img.length) setBe(img, m.at, m.width, m.value);
  }
  return img;
}

/** How a case ended: refused at open, opened but some request failed, or read cleanly. */
type Outcome = 'refused' | 'failed' | 'read';

/**
 * Opens the bytes as qcow2 over a memory node and reads every range blockStatus reports as data
 * (bounded), plus the first 4 KiB regardless. Resolves with the outcome; rejects on an untyped error.
 */
async function runCase(img: Uint8Array): Promise<Outcome> {
  const graph = new BlockGraph();
  const mem = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'img' });
  await mem.write(0, img);
  let node;
  try {
    node = await graph.open({ driver: 'qcow2', file: 'img', 'read-only': true, backing: null });
  } catch (err) {
    if (err instanceof QmpError) return 'refused';
    throw err;
  }
  let outcome: Outcome = 'read';
  const typedOnly = (err: unknown): undefined => {
    if (!(err instanceof QmpError)) throw err;
    outcome = 'failed';
    return undefined;
  };
  try {
    const buf = new Uint8Array(MAX_READ);
    await node.read(0, buf.subarray(0, 4096)).catch(typedOnly);
    const length = node.length();
    let budget = MAX_READ;
    for (let at = 0, calls = 0; at < length && calls < MAX_STATUS_CALLS && budget > 0; calls++) {
      const st = await node.blockStatus(at, length - at).catch(typedOnly);
      if (!st) break;
      if (st.data) {
        const n = Math.min(st.bytes, budget);
        await node.read(at, buf.subarray(0, n)).catch(typedOnly);
        budget -= n;
      }
      at += st.bytes;
    }
  } finally {
    await graph.release(node).catch(typedOnly);
  }
  return outcome;
}

function watchdog<T>(p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watchdog: no answer in ${WATCHDOG_MS} ms`)), WATCHDOG_MS);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

const describeMutation = (m: Mutation) =>
  m.width === 0
    ? `truncate to ${m.value}`
    : `${m.what} @${m.at} (u${m.width * 8}) = 0x${m.value.toString(16)}`;

const outcomes: Record<Outcome, number> = { refused: 0, failed: 0, read: 0 };

/**
 * Runs CASES_PER_SEED mutated copies of seed `name`; returns the failures (at most 10, each a
 * reproducer: case number, mutations, error), how many cases ran and whether any wasm memory
 * was seen (otherwise the memory cap checked nothing).
 */
async function fuzzSeed(name: string): Promise<{ failures: string[]; cases: number; sawMemory: boolean }> {
  const seed = makeSeed(name);
  const layout = layoutOf(seed);
  const rng = new Prng(0x5eed ^ name.length);
  const failures: string[] = [];
  let sawMemory = false;
  let cases = 0;
  for (; cases < CASES_PER_SEED && failures.length < 10; cases++) {
    const muts = mutations(rng, seed, layout);
    const repro = `${name} case ${cases}: ${muts.map(describeMutation).join('; ')}`;
    memories.length = 0;
    try {
      outcomes[await watchdog(runCase(apply(seed, muts)))]++;
    } catch (err) {
      failures.push(`${repro} -> ${String(err)}`);
    }
    const grown = memories.find((m) => m.buffer.byteLength > MEMORY_CAP);
    if (grown) failures.push(`${repro} -> wasm memory of ${grown.buffer.byteLength} bytes`);
    sawMemory ||= memories.length > 0;
  }
  return { failures, cases, sawMemory };
}

describe('qcow2 fuzzer: every failure is a typed error', () => {
  let total = 0;
  let elapsed = 0;
  afterAll(() => {
    const rate = Math.round((total / elapsed) * 1000);
    if (total) console.log(`qcow2 fuzz: ${total} cases in ${elapsed} ms (${rate} cases/s)`, outcomes);
  });

  it.each(Object.keys(SEEDS))(
    'seed %s',
    async (name) => {
      const started = Date.now();
      const { failures, cases, sawMemory } = await fuzzSeed(name);
      total += cases;
      elapsed += Date.now() - started;
      expect(failures).toEqual([]);
      expect(sawMemory).toBe(true);
    },
    60_000,
  );
});
