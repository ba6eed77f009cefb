/**
 * Internal snapshots written by blockgraph (create, goto, delete, and writes through L2 tables
 * and clusters shared with snapshots) against qemu-img: check finds no errors and no leaks,
 * `snapshot -l` lists them, `convert -l` reads each snapshot as it was when taken, and
 * snapshots qemu-img made are applied and deleted by blockgraph.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../../src/block/node.ts';
import { ensureWasmBuilt } from '../../../wasm/ensure-built.ts';
import { expectQemuClean, openRw, pattern, prng, qemuCompare, Scratch } from './write-helpers.ts';

const s = new Scratch();
beforeAll(() => ensureWasmBuilt());
afterAll(() => s.remove());

const KiB = 1024;
const MiB = 1 << 20;

/** The guest content of snapshot `name` as qemu-img converts it to raw. */
function snapshotContent(path: string, name: string): Uint8Array {
  const out = s.path(`snap-${name}.raw`);
  s.run('qemu-img', 'convert', '-l', `snapshot.name=${name}`, '-O', 'raw', path, out);
  return new Uint8Array(readFileSync(out));
}

async function scribble(node: BlockNode, shadow: Uint8Array, seed: number, ops: number): Promise<void> {
  const rnd = prng(seed);
  for (let i = 0; i < ops; i++) {
    const len = Math.max(512, Math.floor((rnd() * 96 * KiB) / 512) * 512);
    const at = Math.floor((rnd() * (shadow.length - len)) / 512) * 512;
    if (rnd() < 0.8) {
      const d = pattern(len, seed * 1000 + i);
      await node.write(at, d);
      shadow.set(d, at);
    } else {
      await node.writeZeroes(at, len, { unmap: rnd() < 0.5 });
      shadow.fill(0, at, at + len);
    }
  }
}

/** Byte equality without vitest's slow element-wise diff of megabytes. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function names(path: string): string[] {
  const r = spawnSync('qemu-img', ['snapshot', '-l', path], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .slice(2)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(/\s+/).slice(0, 2).join(' '));
}

describe('qcow2 internal snapshots written by blockgraph', () => {
  it.each([
    ['64 KiB clusters', ''],
    ['4 KiB clusters, 2-bit refcounts', 'cluster_size=4k,refcount_bits=2'],
    ['extended L2', 'extended_l2=on,cluster_size=64k'],
    ['8 KiB clusters, compat 0.10', 'cluster_size=8k,compat=0.10'],
  ])('create, write, create, delete, goto: %s', async (_, opts) => {
    const path = s.create(`sn-${opts || 'default'}.qcow2`, 4 * MiB, opts);
    const shadow = new Uint8Array(4 * MiB);
    const img = await openRw(path);
    const ops = img.node.ops;
    await scribble(img.node, shadow, 1, 40);
    await ops.snapshotCreate!('first', { dateSec: 1_700_000_000, dateNsec: 5 });
    const atFirst = shadow.slice();
    await scribble(img.node, shadow, 2, 40);
    await ops.snapshotCreate!('second');
    const atSecond = shadow.slice();
    await scribble(img.node, shadow, 3, 40);
    await img.node.flush();
    expectQemuClean(path);
    expect(names(path)).toEqual(['1 first', '2 second']);
    expect(same(snapshotContent(path, 'first'), atFirst)).toBe(true);
    expect(same(snapshotContent(path, 'second'), atSecond)).toBe(true);
    expect(qemuCompare(s, path, shadow)).toBe('identical');

    await ops.snapshotDelete!(undefined, 'second');
    await ops.snapshotGoto!('first');
    await img.node.flush();
    expect(names(path)).toEqual(['1 first']);
    expectQemuClean(path);
    const back = new Uint8Array(4 * MiB);
    await img.node.read(0, back);
    expect(same(back, atFirst)).toBe(true);
    // Writes after goto COW again: the snapshot keeps its content.
    const now = atFirst.slice();
    await scribble(img.node, now, 4, 30);
    await img.close();
    expectQemuClean(path);
    expect(qemuCompare(s, path, now)).toBe('identical');
    expect(same(snapshotContent(path, 'first'), atFirst)).toBe(true);
  });

  it('applies and deletes snapshots qemu-img made', async () => {
    const path = s.create('qemu-made.qcow2', 2 * MiB);
    s.run('qemu-io', '-c', 'write -P 0x11 0 1M', path);
    s.run('qemu-img', 'snapshot', '-c', 'a', path);
    s.run('qemu-io', '-c', 'write -P 0x22 512k 1M', path);
    s.run('qemu-img', 'snapshot', '-c', 'b', path);
    const atA = snapshotContent(path, 'a');
    const img = await openRw(path);
    await img.node.ops.snapshotGoto!('a');
    await img.node.ops.snapshotDelete!('2');
    await img.close();
    expect(names(path)).toEqual(['1 a']);
    expectQemuClean(path);
    expect(qemuCompare(s, path, atA)).toBe('identical');
  });

  it('refuses what QEMU refuses', async () => {
    const path = s.create('refuse.qcow2', MiB);
    const img = await openRw(path);
    await img.node.ops.snapshotCreate!('x', { id: '7' });
    await expect(img.node.ops.snapshotCreate!('y', { id: '7' })).rejects.toMatchObject({ errno: 'EEXIST' });
    await expect(img.node.ops.snapshotGoto!('nope')).rejects.toMatchObject({ errno: 'ENOENT' });
    await expect(img.node.ops.snapshotDelete!(undefined, 'nope')).rejects.toThrow("Can't find the snapshot");
    // The next free id follows the highest numeric one.
    await img.node.ops.snapshotCreate!('x');
    await img.close();
    expect(names(path)).toEqual(['7 x', '8 x']);
    expectQemuClean(path);
  });
});
