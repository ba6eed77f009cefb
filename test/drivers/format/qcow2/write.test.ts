/**
 * qcow2 writes against the reference: every image written here passes `qemu-img check` with no
 * errors and no leaks, and `qemu-img compare` finds it equal to a raw shadow copy of what was
 * written. Covers refcount widths 1..64, cluster sizes, extended L2, backing files, refcount
 * table growth, concurrency, write-zeroes, discard, resize and lazy refcounts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../../src/block/node.ts';
import { ensureWasmBuilt } from '../../../wasm/ensure-built.ts';
import { openRw, pattern, prng, qemuCheck, qemuCompare, Scratch } from './write-helpers.ts';

const s = new Scratch();
beforeAll(() => ensureWasmBuilt());
afterAll(() => s.remove());

const KiB = 1024;
const MiB = 1 << 20;

/** Random writes, zero writes, discards and flushes on `node`, mirrored into `shadow`. */
async function workload(node: BlockNode, shadow: Uint8Array, seed: number, ops: number, cluster = 64 * KiB) {
  const align = 512;
  const rnd = prng(seed);
  const size = shadow.length;
  for (let i = 0; i < ops; i++) {
    const len = Math.max(align, Math.floor((rnd() * 3 * 64 * KiB) / align) * align);
    const at = Math.floor((rnd() * (size - len)) / align) * align;
    const r = rnd();
    if (r < 0.7) {
      const d = pattern(len, seed * 1000 + i);
      await node.write(at, d);
      shadow.set(d, at);
    } else if (r < 0.85) {
      await node.writeZeroes(at, len, { unmap: rnd() < 0.5 });
      shadow.fill(0, at, at + len);
    } else if (r < 0.95) {
      await node.flush();
    } else {
      // With discard=unmap, whole discarded clusters read as zeros (v3); the rest is left alone.
      await node.discard(at, len);
      if (node.options.discard === 'unmap') {
        shadow.fill(0, Math.ceil(at / cluster) * cluster, Math.floor((at + len) / cluster) * cluster);
      }
    }
  }
}

function expectClean(path: string, shadow: Uint8Array, name = 'shadow.raw') {
  const check = qemuCheck(path);
  expect(check.raw).not.toMatch(/ERROR|Leaked/);
  expect([check.corruptions, check.leaks]).toEqual([0, 0]);
  expect(qemuCompare(s, path, shadow, name)).toBe('identical');
}

describe('qcow2 writes pass qemu-img check and compare', () => {
  it.each([
    ['64 KiB clusters, 16-bit refcounts', ''],
    ['512-byte clusters, 1-bit refcounts', 'cluster_size=512,refcount_bits=1'],
    ['4 KiB clusters, 2-bit refcounts', 'cluster_size=4k,refcount_bits=2'],
    ['4 KiB clusters, 4-bit refcounts', 'cluster_size=4k,refcount_bits=4'],
    ['8 KiB clusters, 8-bit refcounts', 'cluster_size=8k,refcount_bits=8'],
    ['2 MiB clusters, 32-bit refcounts', 'cluster_size=2M,refcount_bits=32'],
    ['4 KiB clusters, 64-bit refcounts', 'cluster_size=4k,refcount_bits=64'],
    ['extended L2, 32 KiB clusters', 'extended_l2=on,cluster_size=32k'],
    ['v2 (compat=0.10)', 'compat=0.10'],
  ])('%s', async (_, opts) => {
    const name = `w-${opts.replace(/[=,]/g, '_') || 'default'}.qcow2`;
    const path = s.create(name, 8 * MiB, opts);
    const shadow = new Uint8Array(8 * MiB);
    const o = await openRw(path);
    await workload(o.node, shadow, name.length, 120);
    const back = new Uint8Array(shadow.length);
    await o.node.read(0, back);
    expect(Buffer.compare(back, shadow)).toBe(0);
    await o.close();
    expectClean(path, shadow, `${name}.raw`);
  });

  it('grows the refcount table (self-describing) with 512-byte clusters and 64-bit refcounts', async () => {
    // 64 refcounts per block, 64 blocks per table cluster: the first table covers 2 MiB.
    const path = s.create('grow.qcow2', 6 * MiB, 'cluster_size=512,refcount_bits=64');
    const shadow = new Uint8Array(6 * MiB);
    const o = await openRw(path, { 'l2-cache-size': 4096, 'refcount-cache-size': 2048 });
    for (let at = 0; at < 6 * MiB; at += 64 * KiB) {
      const d = pattern(64 * KiB, at / 65536);
      await o.node.write(at, d);
      shadow.set(d, at);
    }
    await o.close();
    const info = JSON.parse(s.run('qemu-img', 'info', '--output=json', path)) as { 'actual-size': number };
    expect(info['actual-size']).toBeGreaterThan(6 * MiB);
    expectClean(path, shadow, 'grow.raw');
  });

  it('copies the untouched parts of a cluster from the backing file', async () => {
    s.run('qemu-img', 'create', '-q', '-f', 'qcow2', 'base.qcow2', String(4 * MiB));
    s.run('qemu-io', '-c', 'write -P 0x5a 0 4M', 'base.qcow2');
    for (const [name, opts] of [
      ['top.qcow2', ''],
      ['top-ext.qcow2', 'extended_l2=on'],
    ]) {
      s.run(
        'qemu-img',
        'create',
        '-q',
        '-f',
        'qcow2',
        '-b',
        'base.qcow2',
        '-F',
        'qcow2',
        ...(opts ? ['-o', opts] : []),
        name,
      );
      const shadow = new Uint8Array(4 * MiB).fill(0x5a);
      const o = await openRw(s.path(name), { discard: 'unmap' });
      await workload(o.node, shadow, 7, 80);
      await o.close();
      expectClean(s.path(name), shadow, `${name}.raw`);
    }
  });

  it('with extended L2 allocates only the touched subclusters and copies nothing else', async () => {
    s.run('qemu-img', 'create', '-q', '-f', 'qcow2', 'base2.qcow2', String(MiB));
    s.run('qemu-io', '-c', 'write -P 0x11 0 1M', 'base2.qcow2');
    s.run(
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      'base2.qcow2',
      '-F',
      'qcow2',
      '-o',
      'extended_l2=on',
      'sub.qcow2',
    );
    const o = await openRw(s.path('sub.qcow2'));
    await o.node.write(64 * KiB + 2048, pattern(1024, 1)); // inside subcluster 1 of cluster 1
    await o.close();
    const map = JSON.parse(s.run('qemu-img', 'map', '--output=json', 'sub.qcow2')) as Array<{
      start: number;
      length: number;
      depth: number;
    }>;
    // Only the 2 KiB subcluster is in the top layer; the rest of the cluster still comes from below.
    expect(map.filter((m) => m.depth === 0)).toEqual([
      expect.objectContaining({ start: 64 * KiB + 2048, length: 2048 }),
    ]);
    const shadow = new Uint8Array(MiB).fill(0x11);
    shadow.set(pattern(1024, 1), 64 * KiB + 2048);
    expectClean(s.path('sub.qcow2'), shadow, 'sub.raw');
  });

  it('rewrites allocated clusters in place without touching metadata', async () => {
    const path = s.create('inplace.qcow2', 4 * MiB);
    const o = await openRw(path);
    await o.node.write(0, pattern(MiB, 1));
    await o.node.flush();
    const file = o.node.child('file')!;
    const writes: number[] = [];
    const write = file.write.bind(file);
    file.write = (offset, src, flags) => (writes.push(offset), write(offset, src, flags));
    await o.node.write(4096, pattern(4096, 2));
    await o.node.flush();
    expect(writes).toHaveLength(1);
    await o.close();
  });

  it('never allocates one cluster twice under concurrent writes, and reads see old or new', async () => {
    const path = s.create('conc.qcow2', 4 * MiB, 'cluster_size=4k');
    const shadow = new Uint8Array(4 * MiB);
    const o = await openRw(path, { 'l2-cache-size': 8192, 'l2-cache-entry-size': 1024 });
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      // Many small writes into the same few clusters, all at once.
      const at = (i % 50) * 1024 + Math.floor(i / 50) * MiB;
      const d = pattern(512, i);
      shadow.set(d, at);
      jobs.push(o.node.write(at, d));
      if (i % 10 === 0) {
        const r = new Uint8Array(512);
        jobs.push(
          o.node.read(at, r).then(() => {
            const fresh = Buffer.compare(r, d) === 0;
            const old = r.every((b) => b === 0);
            expect(fresh || old).toBe(true);
          }),
        );
      }
    }
    await Promise.all(jobs);
    await o.close();
    expectClean(path, shadow, 'conc.raw');
  });

  it('with extended L2 a subcluster allocation copies no head from an allocated subcluster written in place meanwhile', async () => {
    // Subcluster 0 (1 KiB) of cluster 0 is allocated, subcluster 1 is not. B rewrites [0, 512)
    // in place; A writes [512, 1536), which allocates subcluster 1 in the owned cluster. A must
    // not copy [0, 512) from the guest view: B's data lands between that read and A's write.
    const path = s.create('race.qcow2', MiB, 'cluster_size=32k,extended_l2=on');
    const o = await openRw(path);
    await o.node.write(0, pattern(1024, 1));
    const file = o.node.child('file')!;
    const write = file.write.bind(file);
    const held: Array<() => void> = [];
    file.write = (offset, src, flags) =>
      new Promise<void>((done) => held.push(done)).then(() => write(offset, src, flags));
    const b = pattern(512, 2);
    const a = pattern(1024, 3);
    const wb = o.node.write(0, b);
    while (held.length < 1) await new Promise((r) => setTimeout(r, 1));
    const wa = o.node.write(512, a);
    const settle = Date.now() + 200;
    while (held.length < 2 && Date.now() < settle) await new Promise((r) => setTimeout(r, 1));
    held[0]!(); // B's data reaches the file first ...
    await wb;
    held[1]?.(); // ... then A's, if A writes anything at all
    await wa;
    file.write = write;
    const shadow = new Uint8Array(MiB);
    shadow.set(pattern(1024, 1));
    shadow.set(b, 0);
    shadow.set(a, 512);
    const r = new Uint8Array(2048);
    await o.node.read(0, r);
    expect(Buffer.compare(r, shadow.subarray(0, 2048))).toBe(0);
    await o.close();
    expectClean(path, shadow, 'race.raw');
  });

  it('grows on truncate (L1 table grows), and shrinks again', async () => {
    const path = s.create('resize.qcow2', MiB, 'cluster_size=512');
    const o = await openRw(path);
    const d = pattern(4096, 9);
    await o.node.write(MiB - 4096, d);
    await o.node.truncate(64 * MiB);
    expect(o.node.length()).toBe(64 * MiB);
    await o.node.write(60 * MiB, d);
    // Shrinking drops the data past the new end (shrink.test.ts covers the details).
    await o.node.truncate(32 * MiB);
    await o.close();
    const shadow = new Uint8Array(32 * MiB);
    shadow.set(d, MiB - 4096);
    expectClean(path, shadow, 'resize.raw');
  });

  it('alternates writers with qemu-io', async () => {
    const path = s.create('alt.qcow2', 4 * MiB, 'cluster_size=16k');
    const shadow = new Uint8Array(4 * MiB);
    for (let round = 0; round < 3; round++) {
      s.run('qemu-io', '-c', `write -P 0x${(0x40 + round).toString(16)} ${round * 300}k 100k`, path);
      shadow.fill(0x40 + round, round * 300 * KiB, round * 300 * KiB + 100 * KiB);
      const o = await openRw(path);
      const d = pattern(70 * KiB, round);
      await o.node.write(round * 300 * KiB + 50 * KiB, d);
      shadow.set(d, round * 300 * KiB + 50 * KiB);
      await o.close();
    }
    expectClean(path, shadow, 'alt.raw');
  });

  it('lazy refcounts: a dirty image is repaired on the next read-write open', async () => {
    const path = s.create('lazy.qcow2', 4 * MiB, 'lazy_refcounts=on');
    const o = await openRw(path);
    await o.node.write(0, pattern(200 * KiB, 5));
    await o.node.flush();
    // Simulate a crash: never closed; the header says dirty.
    const info = JSON.parse(s.run('qemu-img', 'info', '--output=json', '-U', path)) as {
      'dirty-flag': boolean;
    };
    expect(info['dirty-flag']).toBe(true);
    const again = await openRw(path);
    await again.close();
    const shadow = new Uint8Array(4 * MiB);
    shadow.set(pattern(200 * KiB, 5), 0);
    expectClean(path, shadow, 'lazy.raw');
  });

  it('detect-zeroes=unmap turns zero writes into zero clusters', async () => {
    const path = s.create('dz.qcow2', 4 * MiB);
    const o = await openRw(path, { 'detect-zeroes': 'unmap', discard: 'unmap' });
    await o.node.write(0, pattern(MiB, 1));
    await o.node.write(0, new Uint8Array(MiB));
    await o.close();
    const map = JSON.parse(s.run('qemu-img', 'map', '--output=json', path)) as Array<{ data: boolean }>;
    expect(map.every((m) => !m.data)).toBe(true);
    expectClean(path, new Uint8Array(4 * MiB), 'dz.raw');
  });

  it('an allocation spanning two refcount blocks does not evict one for the other forever', async () => {
    // Minimized workload (512-byte clusters, 64-bit refcounts: 64 refcounts per block, a 4-block
    // refcount cache): the last write's clusters straddle two blocks while only one cache slot
    // was clean, and loading each evicted the other.
    const path = s.create('thrash.qcow2', MiB, 'cluster_size=512,refcount_bits=64');
    const shadow = new Uint8Array(MiB);
    const o = await openRw(path, { discard: 'unmap' });
    const ops: Array<[string, number?, number?, number?]> = [
      ['w', 406016, 10240],
      ['z', 804864, 463, 0],
      ['w', 998400, 8853],
      ['w', 924672, 12800],
      ['z', 774144, 492, 0],
      ['w', 439296, 6144],
      ['w', 794624, 78],
      ['z', 816904, 1, 0],
      ['w', 291881, 15872],
      ['w', 685568, 2851],
      ['w', 817644, 12562],
      ['w', 552670, 14848],
      ['w', 3584, 14243],
      ['w', 42602, 14336],
      ['w', 605184, 532],
      ['w', 72704, 11776],
      ['w', 955392, 2168],
      ['d', 13312, 579],
      ['w', 759118, 3744],
      ['w', 657595, 8411],
      ['w', 251904, 4608],
      ['w', 716800, 8192],
      ['w', 172032, 6876],
      ['z', 995258, 12288, 1],
      ['w', 35328, 4947],
      ['w', 313856, 15299],
      ['w', 379306, 11423],
      ['w', 840192, 10752],
      ['w', 806229, 3072],
      ['d', 800768, 15872],
      ['d', 823808, 6144],
      ['f'],
      ['w', 500434, 2048],
      ['w', 1035776, 5762],
      ['w', 13202, 7472],
      ['w', 946141, 14848],
    ];
    for (const [i, [kind, at = 0, len = 0, unmap]] of ops.entries()) {
      if (kind === 'w') {
        const d = pattern(len, i);
        await o.node.write(at, d);
        shadow.set(d, at);
      } else if (kind === 'z') {
        await o.node.writeZeroes(at, len, { unmap: unmap === 1 });
        shadow.fill(0, at, at + len);
      } else if (kind === 'd') {
        await o.node.discard(at, len);
        shadow.fill(0, Math.ceil(at / 512) * 512, Math.floor((at + len) / 512) * 512);
      } else await o.node.flush();
    }
    await o.close();
    expectClean(path, shadow, 'thrash.raw');
  });

  it('clears unknown autoclear bits on a read-write open', async () => {
    const path = s.create('ac.qcow2', MiB);
    const fd = Buffer.alloc(8);
    fd.writeBigUInt64BE(0x80n);
    const { openSync, writeSync, closeSync, readFileSync } = await import('node:fs');
    const h = openSync(path, 'r+');
    writeSync(h, fd, 0, 8, 88);
    closeSync(h);
    const o = await openRw(path);
    await o.close();
    expect(readFileSync(path).readBigUInt64BE(88)).toBe(0n);
  });
});
