/**
 * snapshot-access: reads the copy-before-write node's point-in-time view, refuses writes,
 * discards release snapshot clusters, and over a node that keeps no snapshot reads fail ENOTSUP.
 */
import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../../src/block/backend.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const MiB = 1 << 20;
const CLUSTER = 65536;

async function fleece() {
  const graph = new BlockGraph();
  const src = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'src', size: MiB });
  await src.write(0, new Uint8Array(MiB).fill(7));
  const blk = new BlockBackend(graph, 'd0');
  blk.insert(src);
  const cbw = await graph.blockdevAdd({
    driver: 'copy-before-write',
    'node-name': 'cbw',
    file: 'src',
    target: { driver: 'memory', 'node-name': 'tgt', size: MiB },
  });
  await graph.replaceNode(src, cbw);
  const snap = await graph.blockdevAdd({ driver: 'snapshot-access', 'node-name': 'snap', file: 'cbw' });
  return { graph, blk, snap, tgt: graph.lookup('tgt') };
}

describe('snapshot-access', () => {
  it('reads the old data after a guest write, and refuses writes with EPERM', async () => {
    const { blk, snap } = await fleece();
    await blk.write(100, new Uint8Array(10).fill(9));
    const buf = new Uint8Array(200);
    await snap.read(0, buf);
    expect(buf.every((b) => b === 7)).toBe(true);
    await expect(snap.write(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EPERM' });
    // Where the data comes from: the target for the copied cluster.
    expect(await snap.blockStatus(0, MiB)).toMatchObject({ bytes: CLUSTER, allocated: true });
  });

  it('discard releases whole clusters: they are no longer copied nor readable', async () => {
    const { blk, snap, tgt } = await fleece();
    await snap.discard(CLUSTER, 2 * CLUSTER + 100);
    await blk.write(CLUSTER, new Uint8Array(512).fill(1));
    const t = new Uint8Array(CLUSTER);
    await tgt.read(CLUSTER, t);
    expect(t.every((b) => b === 0)).toBe(true);
    await expect(snap.read(CLUSTER, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EACCES' });
    // The partial third cluster stays.
    const still = new Uint8Array(512);
    await snap.read(3 * CLUSTER, still);
    expect(still.every((b) => b === 7)).toBe(true);
  });

  it('over a node that keeps no snapshot, reads fail ENOTSUP', async () => {
    const graph = new BlockGraph();
    await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm', size: MiB });
    const snap = await graph.blockdevAdd({ driver: 'snapshot-access', 'node-name': 's', file: 'm' });
    await expect(snap.read(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'ENOTSUP' });
  });
});
