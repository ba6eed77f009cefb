/**
 * The crash test (issue 4, validation): qcow2 over x-volatile-cache over a memory store runs a
 * seeded random workload; a crash armed at a random write-type request of the filter (so it can
 * strike inside the driver's metadata sequence: COW, refcount block allocation, refcount table
 * growth, L2/L1 updates, lazy refcounts) keeps a random subset of the unflushed writes, torn at
 * sector granularity. Then the image must open read-write (lazy refcounts: repaired), every
 * sector flushed before the crash must read back, every other sector must hold its content at
 * the last flush or one written since, and blockgraph's own check (every seed) and `qemu-img
 * check` (on a file copy, every QEMU_CHECK_EVERY-th seed) must report no corruption; leaks are
 * allowed, and both checks must count the same leaks.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../../src/block/node.ts';
import {
  armVolatileCacheCrash,
  crashVolatileCache,
  volatileCacheCrashed,
  volatileCacheRequests,
} from '../../../../src/drivers/filter/volatile-cache.ts';
import { deleteMemoryStore } from '../../../../src/drivers/protocol/memory.ts';
import { checkImage } from '../../../../src/drivers/format/qcow2/check.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import { apply, createImage, effect, qemuCheck, randomOp, Rng, type ImageSpec, type Op } from './workload.ts';

const dir = mkdtempSync(join(tmpdir(), 'bg-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KiB = 1024;
const MiB = 1024 * KiB;
const SECTOR = 512;
const SEEDS = 500;
const BATCH = 25;
const QEMU_CHECK_EVERY = 5;
const PRELUDE_WRITE = 64 * KiB;

interface CrashSpec extends ImageSpec {
  /** Ops per seed. */
  readonly ops: number;
  /** How many PRELUDE_WRITE-byte writes fill the image from its start first (refcount table growth). */
  readonly prelude?: number;
}

const SPECS: CrashSpec[] = [
  { name: 'c64k-r16', size: 2 * MiB, clusterSize: 64 * KiB, refcountBits: 16, ops: 40 },
  {
    name: 'c64k-lazy-backing',
    size: 2 * MiB,
    clusterSize: 64 * KiB,
    refcountBits: 16,
    lazyRefcounts: true,
    backing: true,
    ops: 40,
  },
  { name: 'c4k-r1-backing', size: 1 * MiB, clusterSize: 4 * KiB, refcountBits: 1, backing: true, ops: 40 },
  {
    name: 'c64k-extl2-backing',
    size: 2 * MiB,
    clusterSize: 64 * KiB,
    refcountBits: 8,
    extendedL2: true,
    backing: true,
    ops: 40,
  },
  // 512-byte clusters, 64-bit refcounts: one refcount block covers 32 KiB and the first refcount
  // table 2 MiB, so the prelude's 2.5 MiB grow the table (and allocate ~80 refcount blocks).
  {
    name: 'c512-r64-reftable-growth',
    size: 3 * MiB,
    clusterSize: 512,
    refcountBits: 64,
    ops: 20,
    prelude: 40,
  },
  { name: 'c512-r64-lazy', size: 1 * MiB, clusterSize: 512, refcountBits: 64, lazyRefcounts: true, ops: 30 },
];

/** Per spec: the image qemu-img made, its backing file, and the guest view it starts with. */
const templates = SPECS.map((spec, i) => {
  const made = createImage(dir, spec, new Rng(i + 1));
  return { bytes: readFileSync(made.path), base: made.base, view: made.view };
});

/**
 * What the guest may see after a crash: the content at the last completed flush (`durable`),
 * plus for each sector written since, every content it was given (`since`), and the sizes the
 * image may have.
 */
class CrashShadow {
  readonly cur: Uint8Array;
  readonly durable: Uint8Array;
  readonly since = new Map<number, Uint8Array[]>();
  sizes: number[];

  constructor(
    view: Uint8Array,
    maxSize: number,
    public size: number,
  ) {
    this.cur = new Uint8Array(maxSize);
    this.cur.set(view);
    this.durable = this.cur.slice();
    this.sizes = [size];
  }

  /** Records `op` as issued: its sectors may now hold the new content. */
  issue(op: Op, cluster: number): void {
    for (const [at, bytes] of effect(op, this.size, cluster)) {
      this.cur.set(bytes, at);
      const end = at + bytes.length;
      for (let s = Math.floor(at / SECTOR); s * SECTOR < end; s++) {
        const list = this.since.get(s) ?? [];
        list.push(this.cur.slice(s * SECTOR, (s + 1) * SECTOR));
        this.since.set(s, list);
      }
    }
    if (op.kind === 'grow') {
      this.size = op.size;
      this.sizes.push(op.size);
    }
  }

  /** A flush completed: everything issued so far is durable. */
  flushed(): void {
    for (const s of this.since.keys())
      this.durable.set(this.cur.subarray(s * SECTOR, (s + 1) * SECTOR), s * SECTOR);
    this.since.clear();
    this.sizes = [this.size];
  }

  /**
   * What is wrong with the first sector of `got` (the guest view from 0) that no allowed content
   * explains: its number and the leading bytes of what it holds and of what it could hold.
   */
  firstViolation(got: Uint8Array): string | undefined {
    const head = (a: Uint8Array) => Buffer.from(a.subarray(0, 8)).toString('hex');
    for (let s = 0; s * SECTOR < got.length; s++) {
      const actual = got.subarray(s * SECTOR, (s + 1) * SECTOR);
      const same = (want: Uint8Array) => Buffer.compare(actual, want) === 0;
      const flushed = this.durable.subarray(s * SECTOR, (s + 1) * SECTOR);
      if (same(flushed)) continue;
      const since = this.since.get(s) ?? [];
      if (!since.some(same)) {
        const may = [flushed, ...since].map(head).join(' or ');
        return `sector ${s} holds ${head(actual)}..., not ${may}...`;
      }
    }
    return undefined;
  }
}

/** A format under test: the image to start from and how discard shows in the guest view. */
interface Setup {
  readonly format: 'qcow2' | 'raw';
  readonly spec: CrashSpec;
  readonly bytes: Uint8Array;
  readonly view: Uint8Array;
  readonly base?: string;
  /** Discard zeroes whole units of this many bytes (qcow2: clusters; raw over memory: bytes). */
  readonly discardUnit: number;
}

function qcow2Setup(seed: number): Setup {
  const slot = seed % SPECS.length;
  const spec = SPECS[slot] as CrashSpec;
  const template = templates[slot] as (typeof templates)[number];
  return { format: 'qcow2', spec, ...template, discardUnit: spec.clusterSize };
}

/** The same workload over raw, where the filter's own semantics are the whole story. */
function rawSetup(): Setup {
  const spec = SPECS[0] as CrashSpec;
  const view = new Uint8Array(spec.size);
  return { format: 'raw', spec, bytes: view, view, discardUnit: 1 };
}

/** Opens the format over `protocol` (the memory store, perhaps behind the volatile cache). */
async function openImage(
  graph: BlockGraph,
  setup: Setup,
  protocol: Record<string, unknown>,
): Promise<BlockNode> {
  const backing = setup.base
    ? { backing: { driver: 'raw', file: await baseStore(setup.base, setup.view) } }
    : {};
  return graph.open({ driver: setup.format, discard: 'unmap', file: protocol, ...backing });
}

/**
 * The backing file `path` as a memory node's options: in memory so that a crashed graph, which
 * cannot be closed cleanly, leaves no file handle behind. `view` is its content.
 */
async function baseStore(path: string, view: Uint8Array): Promise<Record<string, unknown>> {
  const store = `base:${path}`;
  if (!filledBases.has(store)) {
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'memory', store });
    await node.write(0, view);
    await graph.release(node);
    filledBases.add(store);
  }
  return { driver: 'memory', store };
}

const filledBases = new Set<string>();

async function readAll(node: BlockNode): Promise<Uint8Array> {
  const buf = new Uint8Array(node.length());
  await node.read(0, buf);
  return buf;
}

/**
 * Runs the seeded workload of `seed` on `node` (over the volatile cache `vc`) until the armed
 * crash strikes. Returns whether it struck.
 */
async function runWorkload(
  node: BlockNode,
  vc: BlockNode,
  setup: Setup,
  seed: number,
  shadow: CrashShadow,
  afterOp: () => Promise<void> = async () => {},
): Promise<boolean> {
  const { spec } = setup;
  const rng = new Rng(seed * 7919 + 17);
  const prelude = spec.prelude ?? 0;
  for (let i = 0; i < prelude + spec.ops; i++) {
    const op: Op =
      i < prelude
        ? { kind: 'write', offset: i * PRELUDE_WRITE, data: rng.bytes(PRELUDE_WRITE) }
        : randomOp(rng, shadow.size, spec.clusterSize, shadow.cur.length);
    shadow.issue(op, setup.discardUnit);
    try {
      await apply(node, op);
      if (op.kind === 'flush') shadow.flushed();
    } catch (err) {
      // Only the crash may fail a request.
      if (!volatileCacheCrashed(vc)) throw err;
      return true;
    }
    await afterOp();
  }
  return false;
}

/** Loads the setup's image into the memory store `store` and opens it behind the volatile cache. */
async function openCached(
  graph: BlockGraph,
  setup: Setup,
  store: string,
): Promise<{ node: BlockNode; vc: BlockNode }> {
  const mem = await graph.open({ driver: 'memory', store });
  await mem.write(0, setup.bytes);
  await graph.release(mem);
  const vcOptions = { driver: 'x-volatile-cache', 'node-name': 'vc', file: { driver: 'memory', store } };
  const node = await openImage(graph, setup, vcOptions);
  return { node, vc: graph.lookup('vc') };
}

/**
 * How many requests and flushes the seed's whole workload sends to the volatile cache, and the
 * requests sent by the op that grew the refcount table, if one did.
 */
async function countRequests(
  seed: number,
  setup: Setup,
): Promise<{ total: number; growth?: [number, number] }> {
  const store = `count-${setup.format}-${seed}`;
  const graph = new BlockGraph();
  const { node, vc } = await openCached(graph, setup, store);
  const header = new Uint8Array(64);
  let before = 0;
  let growth: [number, number] | undefined;
  await runWorkload(node, vc, setup, seed, newShadow(setup), async () => {
    await vc.read(0, header);
    if (!growth && reftableClusters(header) > reftableClusters(setup.bytes)) {
      growth = [before + 1, volatileCacheRequests(vc)];
    }
    before = volatileCacheRequests(vc);
  });
  const total = volatileCacheRequests(vc);
  await graph.release(node);
  deleteMemoryStore(store);
  return { total, growth };
}

function newShadow(setup: Setup): CrashShadow {
  return new CrashShadow(setup.view, setup.spec.size + 8 * setup.spec.clusterSize, setup.spec.size);
}

/** What a seed exercised. */
interface SeedOutcome {
  /** The crash struck inside a request (rather than after the workload). */
  struck: boolean;
  /** The refcount table the reopened image has is larger than the one it started with. */
  reftableGrew: boolean;
  /** The crash struck inside the op that grows the refcount table. */
  struckInGrowth: boolean;
}

/**
 * One seed: the workload with a crash armed at a request drawn uniformly from all it sends (or
 * after the last), reopen, checks (qemu-img's when `withQemuCheck`).
 */
async function crashSeed(seed: number, setup: Setup, withQemuCheck: boolean): Promise<SeedOutcome> {
  const store = `crash-${setup.format}-${seed}`;
  const where = `seed ${seed} (${setup.format} ${setup.spec.name})`;
  const shadow = newShadow(setup);
  const { total, growth } = await countRequests(seed, setup);
  // Every other seed whose workload grows the refcount table strikes inside the op that does.
  const [from, to] = growth && Math.floor(seed / SPECS.length) % 2 === 1 ? growth : [1, total + 1];
  const strikeAt = from + new Rng(seed).int(to - from + 1);

  const graph = new BlockGraph();
  const { node, vc } = await openCached(graph, setup, store);
  armVolatileCacheCrash(vc, seed, strikeAt);
  const struck = await runWorkload(node, vc, setup, seed, shadow);
  if (!struck) await crashVolatileCache(vc, seed);
  // The dead machine's graph: closing it fails where it would write; nothing of it survives.
  await graph.release(node).catch(() => {});

  const after = new BlockGraph();
  const reopened = await openImage(after, setup, { driver: 'memory', store });
  try {
    const length = reopened.length();
    if (setup.format === 'qcow2') expect(shadow.sizes, `${where}: size after crash`).toContain(length);
    // A raw file's length is the file system's: kept writes past a lost grow extend it.
    else expect(length, `${where}: size after crash`).toBeLessThanOrEqual(Math.max(...shadow.sizes));
    expect(shadow.firstViolation(await readAll(reopened)), where).toBeUndefined();
  } finally {
    await after.release(reopened);
  }
  const file = await after.open({ driver: 'memory', store });
  const image = await readAll(file);
  const ours = setup.format === 'qcow2' ? await checkImage(file) : undefined;
  await after.release(file);
  if (ours) {
    expect([ours.corruptions, ours.checkErrors], `${where}: blockgraph's check`).toEqual([0, 0]);
  }
  if (withQemuCheck) {
    const copy = join(dir, `${store}.qcow2`);
    writeFileSync(copy, image);
    const qemu = qemuCheck(copy, true);
    rmSync(copy);
    expect(ours?.leaks, `${where}: leaks by blockgraph's check and qemu-img's`).toBe(qemu.leaks);
  }
  deleteMemoryStore(store);
  return {
    struck,
    reftableGrew: reftableClusters(image) > reftableClusters(setup.bytes),
    struckInGrowth: struck && growth !== undefined && strikeAt >= growth[0] && strikeAt <= growth[1],
  };
}

/** refcount_table_clusters from a qcow2 header. */
function reftableClusters(image: Uint8Array): number {
  return new DataView(image.buffer, image.byteOffset).getUint32(56);
}

/** Runs seeds [first, last] and returns every failure (so one batch reports them all). */
async function crashSeeds(first: number, last: number, setupOf: (seed: number) => Setup): Promise<string[]> {
  const failures: string[] = [];
  for (let seed = first; seed <= last; seed++) {
    const setup = setupOf(seed);
    try {
      const outcome = await crashSeed(seed, setup, setup.format === 'qcow2' && seed % QEMU_CHECK_EVERY === 0);
      if (outcome.struck) coverage.struck++;
      if (outcome.reftableGrew) coverage.reftableGrew++;
      if (outcome.struckInGrowth) coverage.struckInGrowth++;
    } catch (err) {
      failures.push(`seed ${seed} (${setup.spec.name}): ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return failures;
}

const coverage = { struck: 0, reftableGrew: 0, struckInGrowth: 0 };

describe('qcow2 over a volatile write cache survives crashes', () => {
  const batches = Array.from(
    { length: SEEDS / BATCH },
    (_, b) => [b * BATCH, b * BATCH + BATCH - 1] as const,
  );
  it.each(batches)('seeds %i..%i', async (first, last) => {
    expect(await crashSeeds(first, last, qcow2Setup)).toEqual([]);
  });

  it('struck inside requests, and during and after refcount table growth', () => {
    // Most crashes strike inside the workload; of the reftable-growth seeds, half strike inside
    // the op that grows the table and most of the others after it.
    const seen = JSON.stringify(coverage);
    expect(coverage.struck, seen).toBeGreaterThan(SEEDS / 2);
    expect(coverage.reftableGrew, seen).toBeGreaterThan(SEEDS / SPECS.length / 4);
    expect(coverage.struckInGrowth, seen).toBeGreaterThan(SEEDS / SPECS.length / 4);
  });
});

describe('the crash harness', () => {
  it('holds over raw (every sector of the filter is old or new)', async () => {
    expect(await crashSeeds(0, 99, rawSetup)).toEqual([]);
  });
});
