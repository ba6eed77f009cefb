/**
 * The randomized write workload (issue 4, validation): thousands of seeded writes, zero writes,
 * discards, flushes and grows through blockgraph's qcow2 driver, over images `qemu-img create`
 * made with and without a backing file and extended L2, in several cluster sizes and refcount
 * widths. Every op's range is read back against a raw shadow, the whole image now and then and
 * after a reopen; at the end `qemu-img check` finds no errors and no leaks and `qemu-img compare`
 * finds the image equal to the shadow. The same harness runs over raw, to show it is sound.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../../src/block/node.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import {
  apply,
  createImage,
  effect,
  firstMismatch,
  opRange,
  qemuCheck,
  qemuCompare,
  qemuImg,
  randomOp,
  Rng,
  within,
  type ImageSpec,
} from './workload.ts';

const dir = mkdtempSync(join(tmpdir(), 'bg-workload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KiB = 1024;
const MiB = 1024 * KiB;
const OPS = 600;
/** No op (with its read-back) takes this long unless it hangs. */
const STEP_MS = 5000;

const SPECS: ImageSpec[] = [
  { name: 'c64k-r16', size: 8 * MiB, clusterSize: 64 * KiB, refcountBits: 16 },
  { name: 'c4k-r1-backing', size: 2 * MiB, clusterSize: 4 * KiB, refcountBits: 1, backing: true },
  { name: 'c512-r64', size: 1 * MiB, clusterSize: 512, refcountBits: 64 },
  {
    name: 'c64k-extl2-backing',
    size: 8 * MiB,
    clusterSize: 64 * KiB,
    refcountBits: 16,
    extendedL2: true,
    backing: true,
  },
  { name: 'c32k-extl2-r8', size: 4 * MiB, clusterSize: 32 * KiB, refcountBits: 8, extendedL2: true },
  {
    name: 'c64k-lazy-backing',
    size: 4 * MiB,
    clusterSize: 64 * KiB,
    refcountBits: 16,
    lazyRefcounts: true,
    backing: true,
  },
];

/** A guest image under test: how to open it, and the sematics of discard on it. */
interface Target {
  open(): Promise<{ node: BlockNode; close(): Promise<void> }>;
  /** Discard zeroes the whole units of this many bytes it covers (qcow2: clusters); 0: none. */
  discardCluster: number;
}

function fileTarget(format: 'qcow2' | 'raw', path: string, cluster: number): Target {
  return {
    discardCluster: format === 'qcow2' ? cluster : 0,
    async open() {
      const graph = new BlockGraph();
      const node = await graph.open({
        driver: format,
        discard: 'unmap',
        file: { driver: 'file', filename: path },
      });
      return { node, close: () => graph.release(node) };
    },
  };
}

/**
 * Four writes in flight at once to disjoint, unaligned pieces of two neighbouring clusters (so
 * several may allocate one cluster at the same time), then a read-back of both clusters.
 */
async function concurrentWrites(
  node: BlockNode,
  rng: Rng,
  shadow: Uint8Array,
  cluster: number,
  where: string,
) {
  const span = Math.min(2 * cluster, shadow.length);
  const base = rng.int(Math.floor((shadow.length - span) / cluster) + 1) * cluster;
  const cuts = [0, span, ...Array.from({ length: 3 }, () => rng.int(span))].sort((a, b) => a - b);
  const writes = cuts
    .slice(1)
    .map((end, k) => ({ offset: base + (cuts[k] as number), data: rng.bytes(end - (cuts[k] as number)) }));
  await Promise.all(writes.map((w) => node.write(w.offset, w.data)));
  for (const w of writes) shadow.set(w.data, w.offset);
  expect(await firstMismatch(node, shadow, base, span), where).toBe(-1);
}

/**
 * Runs `ops` random ops on `target`, checking every op's range and, every 100 ops and after a
 * reopen halfway, the whole guest; every 25 ops, a burst of concurrent writes. Returns the final
 * shadow.
 */
async function runWorkload(
  target: Target,
  view: Uint8Array,
  seed: number,
  cluster: number,
  ops: number,
): Promise<Uint8Array> {
  const rng = new Rng(seed);
  const maxSize = view.length + 8 * cluster;
  let shadow = view;
  let image = await target.open();
  try {
    for (let i = 0; i < ops; i++) {
      if (i % 25 === 24) {
        const where = `seed ${seed} before op ${i}: concurrent writes`;
        await within(STEP_MS, where, () => concurrentWrites(image.node, rng, shadow, cluster, where));
      }
      const op = randomOp(rng, shadow.length, cluster, maxSize);
      const where = `seed ${seed} op ${i} ${JSON.stringify(op.kind === 'write' ? { ...op, data: op.data.length } : op)}`;
      // A hung request fails the op that hung, not the whole test at its timeout.
      await within(STEP_MS, where, async () => {
        await apply(image.node, op);
        if (op.kind === 'grow') {
          const grown = new Uint8Array(op.size);
          grown.set(shadow);
          shadow = grown;
        }
        const discards = op.kind !== 'discard' || target.discardCluster !== 0;
        for (const [at, bytes] of discards ? effect(op, shadow.length, target.discardCluster) : []) {
          shadow.set(bytes, at);
        }
        expect(image.node.length(), where).toBe(shadow.length);
        const range = opRange(op);
        if (range) {
          const from = Math.max(0, range[0] - 512);
          const len = Math.min(shadow.length, range[0] + range[1] + 512) - from;
          expect(await firstMismatch(image.node, shadow, from, len), where).toBe(-1);
        }
        if (i % 100 === 99) expect(await firstMismatch(image.node, shadow), `${where}: whole image`).toBe(-1);
        if (i === Math.floor(ops / 2)) {
          await image.close();
          image = await target.open();
          expect(await firstMismatch(image.node, shadow), `${where}: after reopen`).toBe(-1);
        }
      });
    }
  } catch (err) {
    // Report the op that failed, not a close that hangs behind it.
    await within(STEP_MS, 'close', () => image.close()).catch(() => {});
    throw err;
  }
  await within(STEP_MS, `seed ${seed}: close`, () => image.close());
  return shadow;
}

describe('randomized qcow2 write workload against a raw shadow and qemu-img', () => {
  it.each(SPECS.map((s, i) => [s.name, s, i] as const))('%s', async (_, spec, i) => {
    const seed = 1000 + i;
    const { path, view } = createImage(dir, spec, new Rng(seed));
    const shadow = await runWorkload(
      fileTarget('qcow2', path, spec.clusterSize),
      view,
      seed,
      spec.clusterSize,
      OPS,
    );
    qemuCheck(path);
    const raw = join(dir, `${spec.name}.shadow.raw`);
    writeFileSync(raw, shadow);
    expect(qemuCompare(path, raw)).toBe('Images are identical.\n');
  });
});

describe('the workload harness', () => {
  it('holds over raw (discard leaves file data alone)', async () => {
    const path = join(dir, 'harness.raw');
    qemuImg(['create', '-q', '-f', 'raw', path, String(2 * MiB)]);
    const shadow = await runWorkload(
      fileTarget('raw', path, 4 * KiB),
      new Uint8Array(2 * MiB),
      7,
      4 * KiB,
      OPS,
    );
    const raw = join(dir, 'harness.shadow.raw');
    writeFileSync(raw, shadow);
    const r = qemuImg(['compare', '-f', 'raw', '-F', 'raw', path, raw]);
    expect(r.stdout).toBe('Images are identical.\n');
  });
});
