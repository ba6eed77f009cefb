/**
 * The throttle filter: opens only over an existing group (QEMU's texts), passes data through,
 * holds requests to the group's limits on an injected clock, shares one group between nodes,
 * follows qom-set changes of a running group, and lets everything go while drained. One run on
 * the real clock checks the measured rate.
 */
import { describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../src/block/node.ts';
import { attachBackend } from '../../../src/graph/drive.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { createObject } from '../../../src/objects/create.ts';
import { ObjectRegistry } from '../../../src/objects/registry.ts';
import { ManualClock, settle } from '../../block/throttle/manual-clock.ts';

const MS = 1e6;

function graphWith(limits: Record<string, number>, clock?: ManualClock): BlockGraph {
  const graph = new BlockGraph(undefined, new ObjectRegistry({ clock }));
  createObject(graph.objects, { 'qom-type': 'throttle-group', id: 'tg0', limits }, { source: 'qmp' });
  return graph;
}

function throttleNode(graph: BlockGraph, name: string): Promise<BlockNode> {
  return graph.blockdevAdd({
    driver: 'throttle',
    'node-name': name,
    'throttle-group': 'tg0',
    file: { driver: 'memory', size: 1 << 20 },
  });
}

/** Starts `count` 512-byte reads on `node`; `times` gets the clock time each one completed. */
function reads(node: BlockNode, clock: ManualClock, count: number, times: number[]): Promise<void>[] {
  return Array.from({ length: count }, () =>
    node.read(0, new Uint8Array(512)).then(() => void times.push(clock.now())),
  );
}

describe('throttle filter', () => {
  it('opens only over an existing group', async () => {
    const graph = graphWith({ 'iops-total': 10 });
    const file = { driver: 'memory', size: 4096 };
    await expect(graph.blockdevAdd({ driver: 'throttle', 'node-name': 't', file })).rejects.toThrow(
      "Parameter 'throttle-group' is missing",
    );
    await expect(
      graph.blockdevAdd({ driver: 'throttle', 'node-name': 't', 'throttle-group': 'zz', file }),
    ).rejects.toThrow("Throttle group 'zz' does not exist");
    expect(graph.nodes.size).toBe(0);
  });

  it('passes data, zero writes and discards through to its file', async () => {
    const graph = graphWith({ 'bps-total': 1_000_000_000 });
    const node = await throttleNode(graph, 't0');
    await node.write(4096, new Uint8Array(4096).fill(7));
    await node.writeZeroes(5120, 512);
    const back = new Uint8Array(4096);
    await node.child('file')!.read(4096, back);
    expect(back.subarray(0, 1024).every((b) => b === 7)).toBe(true);
    expect(back.subarray(1024, 1536).every((b) => b === 0)).toBe(true);
    expect(back.subarray(1536).every((b) => b === 7)).toBe(true);
  });

  it('holds requests to the limit, exactly', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 10 }, clock);
    const node = await throttleNode(graph, 't0');
    const times: number[] = [];
    const done = reads(node, clock, 5, times);
    await clock.advance(300 * MS);
    await Promise.all(done);
    expect(times).toEqual([0, 0, 100 * MS, 200 * MS, 300 * MS]);
  });

  it('shares one group between two nodes: together they keep the limit', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 10 }, clock);
    const [t0, t1] = [await throttleNode(graph, 't0'), await throttleNode(graph, 't1')];
    const times0: number[] = [];
    const times1: number[] = [];
    const done = [...reads(t0, clock, 6, times0), ...reads(t1, clock, 6, times1)];
    await clock.advance(500 * MS);
    // 2 at once, then 10/s for both together: 7 requests by 500 ms, not 7 each.
    expect(times0.length + times1.length).toBe(7);
    expect(times1.length).toBeGreaterThanOrEqual(2);
    await clock.advance(500 * MS);
    await Promise.all(done);
    expect([...times0, ...times1].sort((a, b) => a - b).at(-1)).toBe(1000 * MS);
  });

  it('follows a qom-set of the running group', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 1 }, clock);
    const node = await throttleNode(graph, 't0');
    const times: number[] = [];
    await Promise.all(reads(node, clock, 1, times));
    const waiting = reads(node, clock, 1, times);
    await clock.advance(1000 * MS);
    await Promise.all(waiting);
    expect(times).toEqual([0, 900 * MS]);
    graph.objects.get('tg0')!.set('limits', { 'iops-total': 100 }, 'qmp');
    const next = reads(node, clock, 12, times);
    await clock.advance(10 * MS);
    await Promise.all(next);
    // 100/s: the bucket holds 10; eleven run at once, the twelfth after 10 ms.
    expect(times.slice(2)).toEqual([...Array<number>(11).fill(1000 * MS), 1010 * MS]);
  });

  it('lets queued requests go while drained, and leaves its group on close', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 1 }, clock);
    const node = await throttleNode(graph, 't0');
    const times: number[] = [];
    const done = reads(node, clock, 4, times);
    await settle();
    expect(times).toEqual([0]);
    node.ops.drainBegin!();
    await Promise.all(done);
    node.ops.drainEnd!();
    expect(times).toEqual([0, 0, 0, 0]);
    expect(() => graph.objects.delete('tg0')).toThrow("object 'tg0' is in use, can not be deleted");
    await graph.blockdevDel('t0');
    graph.objects.delete('tg0');
    expect(graph.objects.throttleGroups.find('tg0')).toBeUndefined();
  });

  it('changes group by reopen and child by a live change', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 1 }, clock);
    createObject(graph.objects, { 'qom-type': 'throttle-group', id: 'fast', limits: {} }, { source: 'qmp' });
    const node = await throttleNode(graph, 't0');
    await expect(node.ops.reopen!({ 'throttle-group': 'zz' }, false)).rejects.toThrow(
      "Throttle group 'zz' does not exist",
    );
    await node.ops.reopen!({ 'throttle-group': 'fast' }, false);
    const times: number[] = [];
    await Promise.all(reads(node, clock, 5, times));
    expect(times).toEqual([0, 0, 0, 0, 0]);
    expect(graph.objects.get('tg0')!.canBeDeleted()).toBe(true);
    const other = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm1', size: 1 << 20 });
    await other.write(0, new Uint8Array(512).fill(9));
    node.ops.replaceChild!('file', other);
    const back = new Uint8Array(512);
    await node.read(0, back);
    expect(back[0]).toBe(9);
  });

  it('is inserted above a drive’s node and removed again by live graph changes', async () => {
    const clock = new ManualClock();
    const graph = graphWith({ 'iops-total': 10 }, clock);
    const disk = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm0', size: 1 << 20 });
    const blk = await attachBackend(graph, 'd0', disk, {});
    const t0 = await graph.blockdevAdd({
      driver: 'throttle',
      'node-name': 't0',
      'throttle-group': 'tg0',
      file: 'm0',
    });
    await graph.replaceNode(disk, t0);
    expect(blk.root).toBe(t0);
    const times: number[] = [];
    const writes = [1, 2, 3, 4].map((i) =>
      blk.write(i * 512, new Uint8Array(512).fill(i)).then(() => void times.push(clock.now())),
    );
    await clock.advance(200 * MS);
    await Promise.all(writes);
    expect(times).toEqual([0, 0, 100 * MS, 200 * MS]);
    await graph.replaceNode(t0, disk);
    expect(blk.root).toBe(disk);
    await graph.blockdevDel('t0');
    graph.objects.delete('tg0');
    const back = new Uint8Array(512);
    await blk.read(4 * 512, back);
    expect(back.every((b) => b === 4)).toBe(true);
  });

  it('on the real clock, runs within 20% of its limit', async () => {
    const rate = 4 << 20;
    const graph = graphWith({ 'bps-total': rate });
    const node = await throttleNode(graph, 't0');
    const chunk = new Uint8Array(64 << 10);
    const total = 6 << 20;
    const start = performance.now();
    for (let off = 0; off < total; off += chunk.length) await node.write(off % (1 << 20), chunk);
    const seconds = (performance.now() - start) / 1000;
    // The bucket lets a tenth of a second's worth through before any wait.
    const measured = (total - rate / 10) / seconds;
    expect(measured).toBeGreaterThan(rate * 0.8);
    expect(measured).toBeLessThan(rate * 1.2);
  });
});
