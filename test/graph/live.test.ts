/**
 * Live graph changes (graph/live.ts) under a running write loop: filters inserted above a drive's
 * root and under a qcow2 node and removed again, an overlay appended (bdrv_append), and refused
 * changes that must leave the graph exactly as it was. The images end equal to the loop's shadow
 * and clean for `qemu-img check`.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { tempDir } from '../cli/helpers.ts';
import { readAll, startWriteLoop } from './write-loop.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const SIZE = 2 << 20;

const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

function qcow2Image(name: string, backing?: string): string {
  const path = tmp.path(name);
  const b = backing ? ['-b', backing, '-F', 'raw'] : [];
  expect(tool('qemu-img', ['create', '-q', '-f', 'qcow2', ...b, path, String(SIZE)]).status).toBe(0);
  return path;
}

/** A drive 'd0' over a qcow2 node 'q0' on `path`. */
async function drive(path: string, extra: Record<string, unknown> = {}) {
  const graph = new BlockGraph();
  const root = await graph.blockdevAdd({
    driver: 'qcow2',
    'node-name': 'q0',
    file: { driver: 'file', 'node-name': 'f0', filename: path },
    ...extra,
  });
  const blk = new BlockBackend(graph, 'd0');
  blk.insert(root);
  return { graph, root, blk };
}

/** The nodes and edges of the graph, to compare before and after a refused change. */
function shape(graph: BlockGraph): string[] {
  return [...graph.nodes.values()].map(
    (n) =>
      `${n.nodeName}<-[${n.parents.map((p) => `${p.parent.parentName}:${p.edge.name}:${p.edge.perm}`).join(',')}]` +
      `->[${n.childList.map((e) => `${e.name}=${e.node.nodeName}`).join(',')}] ${JSON.stringify(n.options)}`,
  );
}

async function finish(blk: BlockBackend, loop: ReturnType<typeof startWriteLoop>): Promise<void> {
  await loop.stop();
  await blk.flush();
  expect(Buffer.compare(await readAll(blk), loop.shadow)).toBe(0);
}

describe('live graph changes under a write loop', () => {
  it('inserts a filter above the root and removes it again (replaceNode)', async () => {
    const path = qcow2Image('above.qcow2');
    const { graph, root, blk } = await drive(path);
    const loop = startWriteLoop(blk, 7);
    await loop.progress(20);
    const filter = await graph.blockdevAdd({ driver: 'blkdebug', 'node-name': 'flt', image: 'q0' });
    await graph.replaceNode(root, filter);
    expect(blk.root).toBe(filter);
    expect(root.parents.map((p) => p.parent)).toEqual([filter]);
    await loop.progress(20);
    await graph.replaceNode(filter, root);
    expect(blk.root).toBe(root);
    // The filter is monitor-owned: it stays, unused, until blockdev-del.
    expect(filter.parents).toEqual([]);
    await graph.blockdevDel('flt');
    expect(root.parents.map((p) => p.parent)).toEqual([blk]);
    await loop.progress(20);
    await finish(blk, loop);
    await blk.close();
    await graph.blockdevDel('q0');
    expect(tool('qemu-img', ['check', path]).status).toBe(0);
  });

  it("swaps a qcow2 node's file for a filter over it and back (setChild)", async () => {
    const path = qcow2Image('under.qcow2');
    const { graph, root, blk } = await drive(path);
    const file = graph.lookup('f0');
    const loop = startWriteLoop(blk, 11);
    await loop.progress(20);
    const filter = await graph.blockdevAdd({ driver: 'blkdebug', 'node-name': 'flt', image: 'f0' });
    await graph.setChild(root, 'file', filter);
    expect(root.child('file')).toBe(filter);
    expect(root.options.file).toBe('flt');
    await loop.progress(20);
    await graph.setChild(root, 'file', file);
    expect(filter.parents).toEqual([]);
    await loop.progress(20);
    await finish(blk, loop);
    await blk.close();
    await graph.blockdevDel('q0');
    await graph.blockdevDel('flt');
    expect(graph.nodes.size).toBe(0);
    expect(tool('qemu-img', ['check', path]).status).toBe(0);
  });

  it('appends an overlay: the old top becomes its backing, writes go to the overlay', async () => {
    const basePath = tmp.path('base.raw');
    writeFileSync(basePath, new Uint8Array(SIZE));
    const graph = new BlockGraph();
    const base = await graph.blockdevAdd({
      driver: 'raw',
      'node-name': 'base',
      file: { driver: 'file', filename: basePath },
    });
    const blk = new BlockBackend(graph, 'd0');
    blk.insert(base);
    const overlayPath = qcow2Image('overlay.qcow2', basePath);
    const loop = startWriteLoop(blk, 23);
    await loop.progress(20);
    const overlay = await graph.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'ov',
      backing: null,
      file: { driver: 'file', filename: overlayPath },
    });
    await graph.applyChanges([
      { op: 'set-child', parent: overlay, name: 'backing', child: base },
      { op: 'replace-node', from: base, to: overlay },
    ]);
    expect(blk.root).toBe(overlay);
    expect(overlay.child('backing')).toBe(base);
    expect(base.parents.map((p) => p.parent)).toEqual([overlay]);
    await loop.progress(30);
    await finish(blk, loop);
    await blk.close();
    await graph.blockdevDel('ov');
    await graph.blockdevDel('base');
    expect(tool('qemu-img', ['check', overlayPath]).status).toBe(0);
    const shadowPath = tmp.path('shadow.raw');
    writeFileSync(shadowPath, loop.shadow);
    const cmp = tool('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', overlayPath, shadowPath]);
    expect(cmp.stdout).toBe('Images are identical.\n');
  });
});

describe('refused live changes leave the graph as it was', () => {
  const mem = { driver: 'memory', size: 1 << 20 };

  async function rig(): Promise<{ graph: BlockGraph; top: BlockNode; blk: BlockBackend }> {
    const graph = new BlockGraph();
    const top = await graph.blockdevAdd({
      driver: 'raw',
      'node-name': 'top',
      file: { ...mem, 'node-name': 'm0' },
    });
    const blk = new BlockBackend(graph, 'd0');
    blk.insert(top);
    return { graph, top, blk };
  }

  it('a cycle (QEMU 7.2 text) and a driver that cannot change children', async () => {
    const { graph, top } = await rig();
    const other = await graph.blockdevAdd({ ...mem, 'node-name': 'm1' });
    const before = shape(graph);
    await expect(graph.setChild(other, 'file', top)).rejects.toThrow(
      "Driver 'memory' of node 'm1' does not support replacing its 'file' child",
    );
    await expect(graph.setChild(top, 'file', top)).rejects.toThrow(
      "Making 'top' a file child of 'top' would create a cycle",
    );
    expect(shape(graph)).toEqual(before);
  });

  it('a permission conflict undoes every step, the drivers included', async () => {
    const { graph, top, blk } = await rig();
    const ro = await graph.blockdevAdd({ ...mem, 'node-name': 'ro', 'read-only': true });
    const before = shape(graph);
    // The drive writes: a read-only node cannot become its root, nor the file of its root.
    await expect(graph.replaceNode(top, ro)).rejects.toThrow('Block node is read-only');
    const m1 = await graph.blockdevAdd({ ...mem, 'node-name': 'm1' });
    const withM1 = shape(graph);
    // The first step alone would be fine; the second is refused, so both are undone.
    await expect(
      graph.applyChanges([
        { op: 'set-child', parent: top, name: 'file', child: m1 },
        { op: 'replace-node', from: top, to: ro },
      ]),
    ).rejects.toThrow('Block node is read-only');
    expect(shape(graph)).toEqual(withM1);
    await graph.blockdevDel('m1');
    expect(shape(graph)).toEqual(before);
    expect(blk.root).toBe(top);
    // The raw driver was told its old child back: I/O still reaches m0.
    await blk.write(0, new Uint8Array([1, 2, 3]));
    const got = new Uint8Array(3);
    await graph.lookup('m0').read(0, got);
    expect([...got]).toEqual([1, 2, 3]);
  });

  it('x-volatile-cache keeps its unflushed writes across a child swap', async () => {
    const graph = new BlockGraph();
    const vc = await graph.blockdevAdd({
      driver: 'x-volatile-cache',
      'node-name': 'vc',
      file: { ...mem, 'node-name': 'a' },
    });
    const b = await graph.blockdevAdd({ ...mem, 'node-name': 'b' });
    await vc.write(0, new Uint8Array(512).fill(7));
    await graph.setChild(vc, 'file', b);
    expect(graph.nodes.has('a')).toBe(false);
    await vc.flush();
    const got = new Uint8Array(512);
    await b.read(0, got);
    expect(got.every((x) => x === 7)).toBe(true);
  });

  it('a request issued during the change waits and runs on the new graph', async () => {
    const { graph, top, blk } = await rig();
    const other = await graph.blockdevAdd({ ...mem, 'node-name': 'm1' });
    const change = graph.setChild(top, 'file', other);
    const write = blk.write(512, new Uint8Array(512).fill(9));
    await Promise.all([change, write]);
    const got = new Uint8Array(512);
    await other.read(512, got);
    expect(got.every((b) => b === 9)).toBe(true);
    // The old inline child lost its last user and was closed.
    expect(graph.nodes.has('m0')).toBe(false);
  });
});
