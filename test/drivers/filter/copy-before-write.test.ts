/**
 * copy-before-write: old clusters reach the target before a guest write changes them, only
 * once, only where the bitmap says; error policies; and IMAGE FLEECING: a cbw filter inserted
 * above a drive under a running write loop, with snapshot-access over it, reads exactly the disk
 * as it was at the instant of insertion while the writes go on.
 */
import { describe, expect, it } from 'vitest';
import { createBitmap } from '../../../src/bitmaps/node-bitmaps.ts';
import { BlockBackend } from '../../../src/block/backend.ts';
import type { BlockNode } from '../../../src/block/node.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const MiB = 1 << 20;
const CLUSTER = 65536;

/** The first offset where `a` and `b` differ, or -1 (toEqual on megabytes is far too slow). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function readNode(node: BlockNode, offset = 0, bytes = node.length()): Promise<Uint8Array> {
  const buf = new Uint8Array(bytes);
  await node.read(offset, buf);
  return buf;
}

/** A 4 MiB source whose every byte is known (cluster i filled with i + 1), and a drive on it. */
async function source(graph: BlockGraph): Promise<{ src: BlockNode; blk: BlockBackend }> {
  const src = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'src', size: 4 * MiB });
  for (let c = 0; c < 64; c++) await src.write(c * CLUSTER, new Uint8Array(CLUSTER).fill(c + 1));
  const blk = new BlockBackend(graph, 'drive0');
  blk.insert(src);
  return { src, blk };
}

/** A cbw node over `src` with a fresh memory target, inserted above it (the drive now writes through it). */
async function insertCbw(graph: BlockGraph, src: BlockNode, extra: Record<string, unknown> = {}) {
  const cbw = await graph.blockdevAdd({
    driver: 'copy-before-write',
    'node-name': 'cbw',
    file: 'src',
    target: { driver: 'memory', 'node-name': 'tgt', size: 4 * MiB },
    ...extra,
  });
  await graph.replaceNode(src, cbw);
  const snap = await graph.blockdevAdd({ driver: 'snapshot-access', 'node-name': 'snap', file: 'cbw' });
  return { cbw, tgt: graph.lookup('tgt'), snap };
}

describe('copy-before-write', () => {
  it('copies each old cluster to the target once, before the first write changes it', async () => {
    const graph = new BlockGraph();
    const { src, blk } = await source(graph);
    const before = await readNode(src);
    const { tgt, snap } = await insertCbw(graph, src);
    await blk.write(CLUSTER + 100, new Uint8Array(10).fill(0xee));
    // The whole cluster went to the target, nothing else did.
    expect(firstDiff(await readNode(tgt, CLUSTER, CLUSTER), before.subarray(CLUSTER, 2 * CLUSTER))).toBe(-1);
    expect((await readNode(tgt, 0, CLUSTER)).every((b) => b === 0)).toBe(true);
    // A second write to the cluster must not copy again (the target keeps the old data).
    await blk.write(CLUSTER, new Uint8Array(CLUSTER).fill(0xdd));
    expect(firstDiff(await readNode(tgt, CLUSTER, CLUSTER), before.subarray(CLUSTER, 2 * CLUSTER))).toBe(-1);
    await blk.writeZeroes(3 * MiB, 2 * CLUSTER);
    await blk.discard(2 * MiB, CLUSTER);
    expect(firstDiff(await readNode(snap), before)).toBe(-1);
    expect((await readNode(src, CLUSTER, CLUSTER)).every((b) => b === 0xdd)).toBe(true);
  });

  it('keeps only the clusters of `bitmap`; other snapshot reads fail EACCES', async () => {
    const graph = new BlockGraph();
    const { src, blk } = await source(graph);
    createBitmap(src, CLUSTER, 'b').set(2 * CLUSTER, CLUSTER);
    const before = await readNode(src);
    const { tgt, snap } = await insertCbw(graph, src, { bitmap: { node: 'src', name: 'b' } });
    await blk.write(0, new Uint8Array(3 * CLUSTER).fill(9));
    expect((await readNode(tgt, 0, 2 * CLUSTER)).every((b) => b === 0)).toBe(true);
    expect(
      firstDiff(await readNode(snap, 2 * CLUSTER, CLUSTER), before.subarray(2 * CLUSTER, 3 * CLUSTER)),
    ).toBe(-1);
    await expect(readNode(snap, 0, CLUSTER)).rejects.toMatchObject({ errno: 'EACCES' });
  });

  it("refuses a bitmap that does not exist, with QEMU's texts", async () => {
    const graph = new BlockGraph();
    await source(graph);
    const open = (bitmap: unknown) =>
      graph.blockdevAdd({
        driver: 'copy-before-write',
        'node-name': 'c',
        file: 'src',
        target: { driver: 'memory', size: 4 * MiB },
        bitmap,
      });
    await expect(open({ node: 'src', name: 'nope' })).rejects.toThrow("Dirty bitmap 'nope' not found");
    await expect(open({ node: 'zz', name: 'nope' })).rejects.toThrow("Node 'zz' not found");
    await expect(
      graph.blockdevAdd({ driver: 'copy-before-write', 'node-name': 'c', file: 'src' }),
    ).rejects.toThrow("Parameter 'target' is missing");
  });

  it('on a failed copy breaks the guest write, or with break-snapshot the snapshot', async () => {
    for (const policy of ['break-guest-write', 'break-snapshot']) {
      const graph = new BlockGraph();
      const { src, blk } = await source(graph);
      const { tgt, snap } = await insertCbw(graph, src, { 'on-cbw-error': policy });
      tgt.readOnly = true; // every copy now fails with EPERM
      const write = blk.write(0, new Uint8Array(512).fill(1));
      if (policy === 'break-guest-write') {
        await expect(write).rejects.toMatchObject({ errno: 'EPERM' });
        expect((await readNode(src, 0, 512)).every((b) => b === 1)).toBe(true);
      } else {
        await write;
        expect((await readNode(src, 0, 512)).every((b) => b === 1)).toBe(true);
        await expect(readNode(snap, 2 * MiB, 512)).rejects.toMatchObject({ errno: 'EACCES' });
      }
    }
  });

  it('fleecing: a view taken at instant T under a running write loop equals the disk at T', async () => {
    const graph = new BlockGraph();
    const { src, blk } = await source(graph);
    let running = true;
    let seq = 0;
    const loop = (async () => {
      // Overlapping, unaligned writes all over the disk, several in flight at once.
      while (running) {
        const n = seq++;
        const offset = ((n * 2654435761) % (4 * MiB - 70000)) >>> 0;
        await Promise.all([
          blk.write(offset, new Uint8Array(70000).fill(n & 0xff)),
          blk.write((offset * 7) % (4 * MiB - 512), new Uint8Array(512).fill((n + 1) & 0xff)),
        ]);
        // Memory I/O never waits: let timers (the reader below) run between rounds.
        await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 20));
    // Instant T: inside one drained section, the disk's content is read and the filter inserted.
    const cbw = await graph.blockdevAdd({
      driver: 'copy-before-write',
      'node-name': 'cbw',
      file: 'src',
      target: { driver: 'memory', 'node-name': 'tgt', size: 4 * MiB },
    });
    let atT!: Uint8Array;
    await graph.drained([src], async () => {
      atT = await readNode(src);
      await graph.replaceNode(src, cbw);
    });
    const writesAtT = seq;
    const snap = await graph.blockdevAdd({ driver: 'snapshot-access', 'node-name': 'snap', file: 'cbw' });
    // Read the view in pieces while the loop keeps writing.
    const view = new Uint8Array(4 * MiB);
    for (let at = 0; at < view.length; at += 256 * 1024) {
      await snap.read(at, view.subarray(at, at + 256 * 1024));
      await new Promise((r) => setTimeout(r, 1));
    }
    running = false;
    await loop;
    expect(seq - writesAtT).toBeGreaterThan(5);
    expect(firstDiff(view, atT)).toBe(-1);
    // The disk itself did change after T.
    expect(firstDiff(await readNode(src), atT)).not.toBe(-1);
  });
});
