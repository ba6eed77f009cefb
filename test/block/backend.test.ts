import { describe, expect, it, vi } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { firstDifference, MiB, pattern, prng, rig, settle } from './setup.ts';

describe('BlockBackend requests', () => {
  it('refuses out-of-range requests with EIO and counts them as invalid', async () => {
    const { blk } = await rig();
    const buf = new Uint8Array(1024);
    await expect(blk.read(MiB - 512, buf)).rejects.toMatchObject({
      errno: 'EIO',
      message: 'Input/output error',
    });
    await expect(blk.read(-512, buf)).rejects.toMatchObject({ errno: 'EIO' });
    await expect(blk.read(0.5, buf)).rejects.toMatchObject({ errno: 'EIO' });
    await expect(blk.write(MiB, new Uint8Array(1))).rejects.toMatchObject({ errno: 'EIO' });
    await expect(blk.writeZeroes(MiB - 1, 2)).rejects.toMatchObject({ errno: 'EIO' });
    await expect(blk.discard(MiB + 512, 512)).rejects.toMatchObject({ errno: 'EIO' });
    // Up to the very end, and empty requests at the end, are fine.
    await blk.read(MiB - 1024, buf);
    await blk.read(MiB, new Uint8Array(0));
    const s = blk.stats();
    expect([s.invalid_rd_operations, s.invalid_wr_operations, s.invalid_unmap_operations]).toEqual([3, 2, 1]);
    expect([s.rd_operations, s.failed_rd_operations]).toEqual([2, 0]);
  });

  it('refuses writes to a read-only drive with EPERM but reads from it', async () => {
    const { blk } = await rig({ backend: { readOnly: true } });
    await expect(blk.write(0, new Uint8Array(512))).rejects.toMatchObject({
      errno: 'EPERM',
      message: 'Operation not permitted',
    });
    await expect(blk.writeZeroes(0, 512)).rejects.toMatchObject({ errno: 'EPERM' });
    await expect(blk.discard(0, 512)).rejects.toMatchObject({ errno: 'EPERM' });
    await blk.read(0, new Uint8Array(512));
    expect(blk.stats().invalid_wr_operations).toBe(2);
  });

  it('fails with ENOMEDIUM once the medium is removed', async () => {
    const { blk, graph } = await rig();
    await blk.remove();
    expect(blk.root).toBeNull();
    expect(blk.length()).toBe(0);
    await expect(blk.read(0, new Uint8Array(1))).rejects.toMatchObject({ errno: 'ENOMEDIUM' });
    await expect(blk.flush()).rejects.toMatchObject({ message: 'No medium found' });
    // The monitor-owned node survives its backend and can be deleted now.
    await graph.blockdevDel('r0');
    expect(graph.nodes.size).toBe(0);
  });

  it('makes every write FUA when the write cache is off (cache=writethrough)', async () => {
    const { blk, dbg } = await rig({ backend: { writeback: false } });
    const write = vi.spyOn(dbg.ops, 'write');
    await blk.write(0, new Uint8Array(512));
    expect(write).toHaveBeenCalledWith(0, expect.any(Uint8Array), { fua: true });
  });
});

describe('alignment and read-modify-write', () => {
  const ALIGN = 4096;

  it('sends only aligned requests to a node with 4 KiB alignment, with correct data', async () => {
    const { blk, dbg } = await rig({ size: 256 * 1024, align: ALIGN });
    const seen: [number, number][] = [];
    for (const op of ['read', 'write', 'writeZeroes', 'discard'] as const) {
      const original = dbg.ops[op]!.bind(dbg.ops) as (o: number, x: never, ...r: never[]) => Promise<void>;
      const spy = (o: number, x: Uint8Array | number, ...rest: never[]) => {
        seen.push([o, typeof x === 'number' ? x : x.length]);
        return original(o, x as never, ...rest);
      };
      (dbg.ops as unknown as Record<string, unknown>)[op] = spy;
    }
    const shadow = new Uint8Array(256 * 1024);
    const rnd = prng(7);
    for (let i = 0; i < 150; i++) {
      const offset = Math.floor(rnd(shadow.length - 1));
      const len = Math.min(Math.floor(rnd(3 * ALIGN)) + 1, shadow.length - offset);
      const kind = Math.floor(rnd(3));
      if (kind === 0) {
        const data = pattern(len, i);
        await blk.write(offset, data);
        shadow.set(data, offset);
      } else if (kind === 1) {
        await blk.writeZeroes(offset, len);
        shadow.fill(0, offset, offset + len);
      } else {
        const got = new Uint8Array(len);
        await blk.read(offset, got);
        expect(firstDifference(got, shadow.subarray(offset, offset + len))).toBe(-1);
      }
    }
    const all = new Uint8Array(shadow.length);
    await blk.read(0, all);
    expect(firstDifference(all, shadow)).toBe(-1);
    expect(seen.length).toBeGreaterThan(150);
    for (const [o, n] of seen) expect([o % ALIGN, n % ALIGN]).toEqual([0, 0]);
  });

  it('discards only the whole blocks inside an unaligned range, keeping the partial ones', async () => {
    const { blk, dbg } = await rig({ align: ALIGN });
    const data = pattern(4 * ALIGN, 3);
    await blk.write(0, data);
    const discard = vi.spyOn(dbg.ops, 'discard');
    await blk.discard(100, 3 * ALIGN);
    expect(discard.mock.calls).toEqual([[ALIGN, 2 * ALIGN]]);
    const head = new Uint8Array(ALIGN);
    await blk.read(0, head);
    expect(head).toEqual(data.subarray(0, ALIGN));
    expect(blk.stats()).toMatchObject({ unmap_operations: 1, unmap_bytes: 3 * ALIGN });
  });

  it('pads to the end of a node whose size is not a multiple of the alignment', async () => {
    const size = 3 * ALIGN + 512;
    const { blk } = await rig({ size, align: ALIGN });
    await blk.write(size - 7, pattern(7, 1));
    const tail = new Uint8Array(10);
    await blk.read(size - 10, tail);
    expect(tail).toEqual(Uint8Array.from([0, 0, 0, ...pattern(7, 1)]));
  });
});

describe('ordering of overlapping requests', () => {
  it('applies overlapping unaligned writes fired together in submission order', async () => {
    const size = 64 * 1024;
    const { blk } = await rig({ size, align: 4096 });
    const shadow = new Uint8Array(size);
    const rnd = prng(11);
    const pending: Promise<void>[] = [];
    const reads: { at: number; got: Uint8Array; want: Uint8Array }[] = [];
    for (let i = 0; i < 120; i++) {
      // Everything within 3 blocks, so nearly every pair overlaps or shares a block.
      const offset = Math.floor(rnd(3 * 4096 - 1));
      const len = Math.floor(rnd(6000)) + 1;
      if (i % 4 === 3) {
        // A read issued after writes it was not told to wait for must still see them.
        const got = new Uint8Array(len);
        reads.push({ at: offset, got, want: shadow.slice(offset, offset + len) });
        pending.push(blk.read(offset, got));
      } else {
        const data = pattern(len, i);
        shadow.set(data, offset);
        pending.push(blk.write(offset, data));
      }
    }
    await Promise.all(pending);
    for (const r of reads) expect(firstDifference(r.got, r.want)).toBe(-1);
    const all = new Uint8Array(size);
    await blk.read(0, all);
    expect(firstDifference(all, shadow)).toBe(-1);
  });

  it('makes a flush wait for the writes issued before it', async () => {
    const { blk } = await rig({ align: 4096 });
    const order: string[] = [];
    const w = blk.write(10, pattern(5000, 1)).then(() => order.push('write'));
    const f = blk.flush().then(() => order.push('flush'));
    await Promise.all([w, f]);
    expect(order).toEqual(['write', 'flush']);
  });
});

describe('drain', () => {
  it('waits for in-flight requests, and holds new ones until the drained section ends', async () => {
    const { blk } = await rig({ align: 4096 });
    const log: string[] = [];
    for (let i = 0; i < 3; i++) void blk.write(i * 1000, pattern(3000, i)).then(() => log.push(`w${i}`));
    let late: Promise<unknown> | undefined;
    await blk.drained(async () => {
      expect(log).toEqual(['w0', 'w1', 'w2']);
      late = blk.read(0, new Uint8Array(16)).then(() => log.push('late'));
      await settle();
      expect(log).not.toContain('late');
      log.push('section end');
    });
    await late;
    expect(log).toEqual(['w0', 'w1', 'w2', 'section end', 'late']);
  });

  it('resolves at once when idle', async () => {
    const { blk } = await rig();
    await blk.drain();
    await blk.read(0, new Uint8Array(1));
    await blk.drain();
  });
});

describe('statistics', () => {
  it('reports query-blockstats members with QEMU 7.2 key set and the right values', async () => {
    const { blk } = await rig({ align: 4096 });
    // The key set of a fresh drive, captured from qemu-system-x86_64 7.2 query-blockstats.
    const qemuKeys = [
      'account_failed', 'account_invalid', 'failed_flush_operations', 'failed_rd_operations',
      'failed_unmap_operations', 'failed_wr_operations', 'flush_operations', 'flush_total_time_ns',
      'invalid_flush_operations', 'invalid_rd_operations', 'invalid_unmap_operations',
      'invalid_wr_operations', 'rd_bytes', 'rd_merged', 'rd_operations', 'rd_total_time_ns',
      'timed_stats', 'unmap_bytes', 'unmap_merged', 'unmap_operations', 'unmap_total_time_ns',
      'wr_bytes', 'wr_highest_offset', 'wr_merged', 'wr_operations', 'wr_total_time_ns',
    ]; // prettier-ignore
    expect(Object.keys(blk.stats()).sort()).toEqual(qemuKeys);

    await blk.write(100, new Uint8Array(1000));
    await blk.writeZeroes(8192, 512);
    await blk.read(0, new Uint8Array(4096));
    await blk.read(1, new Uint8Array(3));
    await blk.discard(0, 8192);
    await blk.flush();
    const s = blk.stats();
    expect(s).toMatchObject({
      rd_bytes: 4099,
      rd_operations: 2,
      // Write-zeroes count as writes, as QEMU's devices account them.
      wr_bytes: 1512,
      wr_operations: 2,
      unmap_bytes: 8192,
      unmap_operations: 1,
      flush_operations: 1,
      // The end of the furthest write after padding to the 4 KiB alignment.
      wr_highest_offset: 12288,
      failed_wr_operations: 0,
      account_invalid: true,
      account_failed: true,
      timed_stats: [],
    });
    for (const k of ['rd', 'wr', 'flush', 'unmap'] as const) {
      expect(s[`${k}_total_time_ns`]).toBeGreaterThan(0);
    }
    expect(s.idle_time_ns).toBeGreaterThanOrEqual(0);
  });
});

describe('attachment', () => {
  it('refuses a second writer unless both share writes, naming both devices', async () => {
    const { graph, root } = await rig();
    const other = new BlockBackend(graph, 'd1');
    expect(() => other.insert(root)).toThrow(
      /Permission conflict on node 'r0'.*block device 'd0'.*block device 'd1'|block device 'd1'.*block device 'd0'/,
    );
    // A read-only device does not share writes either (QEMU's blkconf_apply_backend_options)...
    expect(() => new BlockBackend(graph, 'd2', { readOnly: true }).insert(root)).toThrow(
      "required by block device 'd0' (uses node 'r0' as 'root' child) and unshared by block device 'd2'",
    );
    // ...unless it has share-rw.
    const reader = new BlockBackend(graph, 'd3', { readOnly: true, shareRw: true });
    reader.insert(root);
    expect(reader.root).toBe(root);
  });

  it('lets share-rw drives write the same node', async () => {
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm', size: MiB });
    const a = new BlockBackend(graph, 'a', { shareRw: true });
    const b = new BlockBackend(graph, 'b', { shareRw: true });
    a.insert(node);
    b.insert(node);
    await a.write(0, pattern(512, 1));
    const got = new Uint8Array(512);
    await b.read(0, got);
    expect(got).toEqual(pattern(512, 1));
  });

  it('refuses a writable drive on a read-only node with QEMU text', async () => {
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm', 'read-only': true });
    expect(() => new BlockBackend(graph, 'd0').insert(node)).toThrow('Block node is read-only');
    new BlockBackend(graph, 'd1', { readOnly: true }).insert(node);
  });

  it('validates and registers drive names with QEMU texts, and unregisters on close', async () => {
    const { graph, blk } = await rig();
    expect(graph.backends.get('d0')).toBe(blk);
    expect(() => new BlockBackend(graph, 'd0')).toThrow("Device with id 'd0' already exists");
    expect(() => new BlockBackend(graph, 'r0')).toThrow(
      "Device name 'r0' conflicts with an existing node name",
    );
    expect(() => new BlockBackend(graph, '0d')).toThrow('Invalid device name');
    await expect(graph.blockdevAdd({ driver: 'memory', 'node-name': 'd0' })).rejects.toThrow(
      'node-name=d0 is conflicting with a device id',
    );
    await blk.close();
    expect(graph.backends.has('d0')).toBe(false);
    new BlockBackend(graph, 'd0');
  });

  it('refuses a second medium', async () => {
    const { blk, root } = await rig();
    expect(() => blk.insert(root)).toThrow("There already is a medium in device 'd0'");
  });
});

describe('query-block', () => {
  it('matches QEMU for a drive without a device: removable, no qdev, no io-status', async () => {
    const { blk } = await rig();
    const q = blk.queryBlock();
    expect(Object.keys(q)).toEqual(['device', 'type', 'removable', 'locked', 'inserted']);
    expect(q).toMatchObject({ device: 'd0', type: 'unknown', removable: true, locked: false });
    expect(q.inserted).toMatchObject({
      'node-name': 'r0',
      drv: 'raw',
      ro: false,
      image: { format: 'raw', 'virtual-size': MiB },
      cache: { writeback: true, direct: false, 'no-flush': false },
    });
  });

  it('shows qdev and io-status once a device is attached and a policy can stop', async () => {
    const hd = (await rig({ backend: { device: 'hd0' } })).blk.queryBlock();
    expect(hd).toMatchObject({ device: 'd0', qdev: 'hd0', removable: false, 'io-status': 'ok' });
    expect(hd).not.toHaveProperty('tray_open');
    const cd = (await rig({ backend: { device: 'cd0', removable: true } })).blk.queryBlock();
    expect(cd).toMatchObject({ removable: true, tray_open: false });
    const reportOnly = await rig({ backend: { device: 'hd0', werror: 'report', rerror: 'report' } });
    expect(reportOnly.blk.queryBlock()).not.toHaveProperty('io-status');
    const noCache = await rig({ backend: { writeback: false } });
    expect(noCache.blk.queryBlock().inserted).toMatchObject({ cache: { writeback: false } });
  });
});
