/**
 * Compressed cluster writes (WriteFlags.compressed; qcow2/writer-compressed.ts and the engine's
 * assembly/qcow2/compressed.ts) checked by the reference tools: every image passes `qemu-img
 * check` without errors or leaks, equals the raw shadow under `qemu-img compare`, shows its
 * compressed clusters in `qemu-img map` (data without a host offset) and reads back in qemu-io.
 * Includes the refcounts of host clusters shared by several compressed clusters when those are
 * overwritten, zeroed or discarded, and QEMU's refusals.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../../../src/block/backend.ts';
import { BlockIOError } from '../../../../src/block/errors.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import {
  expectQemuClean,
  openRw,
  pattern,
  prng,
  qemuCompare,
  Scratch,
  type Opened,
} from './write-helpers.ts';

const scratch = new Scratch();
afterAll(() => scratch.remove());
const C = { compressed: true } as const;
const K64 = 65536;

/** Text-like bytes: compress well, and differently per seed. */
function text(len: number, seed: number): Uint8Array {
  const words = ['qcow2 ', 'cluster ', 'refcount ', `s${seed} `, 'L2\n', 'table '];
  const rnd = prng(seed);
  const b = new Uint8Array(len);
  for (let i = 0; i < len;)
    for (const ch of words[(rnd() * words.length) | 0]) if (i < len) b[i++] = ch.charCodeAt(0);
  return b;
}

function noise(len: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  return Uint8Array.from({ length: len }, () => (rnd() * 256) | 0);
}

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  offset?: number;
}

function map(path: string): MapEntry[] {
  return JSON.parse(scratch.run('qemu-img', 'map', '--output=json', path)) as MapEntry[];
}

/** Guest offsets of clusters qemu-img map shows as compressed (data, no host offset). */
function compressedAt(path: string, cs = K64): number[] {
  const out: number[] = [];
  for (const e of map(path)) {
    if (!e.data || e.offset !== undefined) continue;
    for (let at = e.start; at < e.start + e.length; at += cs) out.push(at);
  }
  return out;
}

async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof BlockIOError ? err.errno : String(err);
}

/** Writes `data` at `offset` compressed into both the image and the shadow. */
async function put(o: Opened, shadow: Uint8Array, offset: number, data: Uint8Array): Promise<void> {
  await o.node.write(offset, data, C);
  shadow.set(data, offset);
}

describe.each(['zlib', 'zstd'])('compressed writes, compression_type=%s', (type) => {
  it('store text compressed, incompressible clusters plainly, and read back in qemu-io', async () => {
    const size = 1 << 20;
    const path = scratch.create(`basic-${type}.qcow2`, size, `compression_type=${type}`);
    const o = await openRw(path);
    const shadow = new Uint8Array(size);
    await put(o, shadow, 0, text(3 * K64, 1));
    await put(o, shadow, 3 * K64, noise(K64, 2));
    await put(o, shadow, 5 * K64, pattern(K64, 3));
    await put(o, shadow, 7 * K64, new Uint8Array(K64));
    const back = new Uint8Array(size);
    await o.node.read(0, back);
    expect(Buffer.compare(back, shadow)).toBe(0);
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    // The random cluster could not shrink: a normal cluster with a host offset.
    expect(compressedAt(path)).toEqual([0, K64, 2 * K64, 5 * K64, 7 * K64]);
    const info = JSON.parse(scratch.run('qemu-img', 'info', '--output=json', path));
    expect(info['format-specific'].data['compression-type']).toBe(type);
    const io = spawnSync(
      'qemu-io',
      ['-c', `read -P 0 ${7 * K64} 64k`, '-c', `read -P 0 ${6 * K64} 64k`, path],
      {
        encoding: 'utf8',
      },
    );
    expect(io.stdout).not.toMatch(/Pattern verification failed/);
    expect(io.stdout.match(/^read 65536\/65536 bytes/gm)).toHaveLength(2);
  });

  it('pack clusters byte-wise into shared host clusters, each counted once per user', async () => {
    const path = scratch.create(
      `packed-${type}.qcow2`,
      4 << 20,
      `compression_type=${type},cluster_size=4096`,
    );
    const o = await openRw(path);
    const shadow = new Uint8Array(4 << 20);
    // 4 KiB clusters compressing to a few hundred bytes: many share each host cluster.
    for (let i = 0; i < 256; i++) await put(o, shadow, i * 4096, text(4096, 100 + i));
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    const check = JSON.parse(
      spawnSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' }).stdout,
    );
    expect(check['compressed-clusters']).toBe(256);
    // Packed: far fewer host clusters than guest clusters.
    expect(check['image-end-offset']).toBeLessThan(128 * 4096);
  });

  it('overwritten, zeroed and discarded compressed clusters give their shares back', async () => {
    const cs = 4096;
    const size = 1 << 20;
    const path = scratch.create(`mixed-${type}.qcow2`, size, `compression_type=${type},cluster_size=4096`);
    let o = await openRw(path, { discard: 'unmap' });
    const shadow = new Uint8Array(size);
    for (let i = 0; i < 64; i++) await put(o, shadow, i * cs, text(cs, 200 + i));
    await o.close();
    o = await openRw(path, { discard: 'unmap' });
    // Some of the clusters sharing a host cluster go: that host cluster must stay.
    await o.node.write(0, pattern(cs, 1));
    shadow.set(pattern(cs, 1), 0);
    await o.node.writeZeroes(2 * cs, cs, {});
    shadow.fill(0, 2 * cs, 3 * cs);
    await o.node.discard(5 * cs, cs);
    shadow.fill(0, 5 * cs, 6 * cs);
    await o.node.flush();
    expectQemuClean(path);
    // Then every one of them: all the shared host clusters are freed.
    for (let i = 0; i < 64; i += 2) {
      const p = pattern(cs, i + 2);
      await o.node.write(i * cs, p);
      shadow.set(p, i * cs);
    }
    await o.node.writeZeroes(cs, 63 * cs, { unmap: true });
    shadow.fill(0, cs, 64 * cs);
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    expect(compressedAt(path, cs)).toEqual([]);
    // The freed space is reused by new compressed clusters.
    o = await openRw(path);
    for (let i = 100; i < 132; i++) await put(o, shadow, i * cs, text(cs, 300 + i));
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    expect(compressedAt(path, cs)).toHaveLength(32);
  });

  it('a partial last cluster is compressed zero-padded; other unaligned writes are EINVAL', async () => {
    const size = 3 * K64 + 5 * 512;
    const path = scratch.create(`tail-${type}.qcow2`, size, `compression_type=${type}`);
    const o = await openRw(path);
    const shadow = new Uint8Array(size);
    await put(o, shadow, 2 * K64, text(K64 + 5 * 512, 9));
    expect(await errnoOf(o.node.write(512, text(K64, 1), C))).toBe('EINVAL');
    expect(await errnoOf(o.node.write(0, text(4096, 1), C))).toBe('EINVAL');
    // "Compression can't overwrite anything" (qcow2_alloc_compressed_cluster_offset).
    expect(await errnoOf(o.node.write(2 * K64, text(K64, 2), C))).toBe('EIO');
    await o.node.write(0, text(K64, 3));
    shadow.set(text(K64, 3), 0);
    expect(await errnoOf(o.node.write(0, text(K64, 4), C))).toBe('EIO');
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    expect(compressedAt(path)).toEqual([2 * K64, 3 * K64]);
  });
});

describe('compressed writes on other layouts', () => {
  it.each([
    ['extended L2', 'extended_l2=on,cluster_size=64k'],
    ['1-bit refcounts (no sharing possible)', 'refcount_bits=1,cluster_size=4k'],
    ['compat 0.10', 'compat=0.10,cluster_size=4k'],
    ['512-byte clusters, new L2 tables', 'cluster_size=512'],
  ])('%s', async (name, opts) => {
    const size = 2 << 20;
    const path = scratch.create(`layout-${name.replace(/\W/g, '')}.qcow2`, size, opts);
    const o = await openRw(path);
    const cs = Number(/cluster_size=(\d+)/.exec(opts.replace('64k', '65536').replace('4k', '4096'))![1]);
    const shadow = new Uint8Array(size);
    const rnd = prng(cs);
    for (let n = 0; n < 40; n++) {
      const at = Math.floor(rnd() * (size / cs)) * cs;
      if (shadow.subarray(at, at + cs).some((b) => b !== 0)) continue;
      await put(o, shadow, at, text(cs, n + 1));
    }
    await o.node.write(0, pattern(cs * 3, 1));
    shadow.set(pattern(cs * 3, 1), 0);
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
  });

  it('concurrent compressed writes to independent clusters all land', async () => {
    const path = scratch.create('concurrent.qcow2', 8 << 20, 'cluster_size=4096');
    const o = await openRw(path);
    const shadow = new Uint8Array(8 << 20);
    await Promise.all(Array.from({ length: 200 }, (_, i) => put(o, shadow, i * 4096 * 7, text(4096, i))));
    await o.close();
    expectQemuClean(path);
    expect(qemuCompare(scratch, path, shadow)).toBe('identical');
    expect(compressedAt(path, 4096)).toHaveLength(200);
  });

  it('is refused with ENOTSUP by drivers that cannot compress and by images with a data file', async () => {
    const raw = scratch.path('plain.raw');
    scratch.run('qemu-img', 'create', '-q', '-f', 'raw', raw, '1M');
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'raw', file: { driver: 'file', filename: raw } });
    const blk = new BlockBackend(graph, '');
    blk.insert(node);
    expect(await errnoOf(blk.write(0, new Uint8Array(K64), C))).toBe('ENOTSUP');
    await blk.close();
    await graph.release(node);
    const path = scratch.create('datafile.qcow2', 1 << 20, `data_file=${scratch.path('data.raw')}`);
    const o = await openRw(path);
    expect(await errnoOf(o.node.write(0, text(K64, 1), C))).toBe('ENOTSUP');
    await o.close();
  });
});
