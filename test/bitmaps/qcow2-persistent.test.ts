/**
 * Persistent dirty bitmaps in qcow2 against QEMU 7.2: bitmaps QEMU wrote load here with the
 * same bits; bitmaps written here are listed by qemu-img info with their flags, pass qemu-img
 * check, and load in QEMU with the same bits; IN_USE while open, inconsistent after a crash.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { findBitmap } from '../../src/bitmaps/node-bitmaps.ts';
import { expectQemuClean, openRw, Scratch } from '../drivers/format/qcow2/write-helpers.ts';
import { session } from '../jobs/helpers.ts';
import { qemuBitmaps, sha256Of } from './qemu-bitmaps.ts';

const scratch = new Scratch();
afterAll(() => scratch.remove());

const MiB = 1 << 20;

/** `qemu-img info --output=json`'s bitmaps list. */
function infoBitmaps(path: string): unknown {
  const info = JSON.parse(scratch.run('qemu-img', 'info', '--output=json', path)) as {
    'format-specific': { data: { bitmaps?: unknown } };
  };
  return info['format-specific'].data.bitmaps;
}

/** The IN_USE flag (bit 0) of the first directory entry, read straight from the file. */
function firstEntryFlags(path: string): number {
  const img = readFileSync(path);
  // The bitmaps extension (magic 0x23852875) holds the directory offset at +16 of its data.
  const at = img.indexOf(Buffer.from([0x23, 0x85, 0x28, 0x75]));
  const dirOffset = Number(img.readBigUInt64BE(at + 8 + 16));
  return img.readUInt32BE(dirOffset + 12);
}

/** A negotiated in-process QMP session's execute, with the graph it runs on. */
async function connect() {
  const { execute, graph } = await session();
  return Object.assign(execute, { graph });
}

describe('qcow2 persistent bitmaps', () => {
  it('loads bitmaps QEMU wrote with identical bits and flags', async () => {
    const path = scratch.create('from-qemu.qcow2', 8 * MiB);
    scratch.run('qemu-img', 'bitmap', '--add', path, 'b0');
    scratch.run('qemu-img', 'bitmap', '--add', '-g', '512', path, 'b1');
    scratch.run('qemu-img', 'bitmap', '--add', '--disable', path, 'off');
    scratch.run('qemu-io', '-c', 'write 0 4k', '-c', 'write 1M 70k', '-c', 'discard 4M 64k', path);
    const qemu = qemuBitmaps(path, ['b0', 'b1', 'off']);

    // Read-only: loaded read-only, the image untouched, `info` as qemu-img's.
    const ro = await openRw(path, { 'read-only': true });
    expect(ro.node.dirtyBitmaps.map((b) => b.readonly)).toEqual([true, true, true]);
    expect(sha256Of(findBitmap(ro.node, 'b1')!)).toBe(qemu.sha256.get('b1'));
    expect(ro.node.ops.info!().bitmaps).toEqual(infoBitmaps(path));
    await ro.close();
    expect(firstEntryFlags(path) & 1).toBe(0);

    const img = await openRw(path);
    // Open read-write: marked IN_USE in the image, as QEMU does.
    expect(firstEntryFlags(path) & 1).toBe(1);
    expect(img.node.dirtyBitmaps.map((b) => b.info())).toEqual([...qemu.info.values()]);
    for (const name of ['b0', 'b1', 'off']) {
      expect(sha256Of(findBitmap(img.node, name)!), name).toBe(qemu.sha256.get(name));
    }
    expect([...findBitmap(img.node, 'b0')!.extents()]).toEqual([
      { offset: 0, bytes: 65536 },
      { offset: MiB, bytes: 131072 },
      { offset: 4 * MiB, bytes: 65536 },
    ]);
    await img.close();
    expect(firstEntryFlags(path) & 1).toBe(0);
    expectQemuClean(path);
  });

  it('stores bitmaps that qemu-img lists, checks clean, and QEMU loads with the same bits', async () => {
    const path = scratch.create('ours.qcow2', 16 * MiB);
    const execute = await connect();
    const add = (args: Record<string, unknown>) => execute('block-dirty-bitmap-add', { node: 'q', ...args });
    expect(
      await execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': 'q',
        file: { driver: 'file', filename: path },
      }),
    ).toEqual({ return: {} });
    expect(await add({ name: 'p', persistent: true })).toEqual({ return: {} });
    expect(await add({ name: 'p2', persistent: true, disabled: true, granularity: 512 })).toEqual({
      return: {},
    });
    expect(await add({ name: 'fine', persistent: true, granularity: 512 })).toEqual({ return: {} });
    expect(await add({ name: 'gone', persistent: true })).toEqual({ return: {} });
    expect(await add({ name: 'ram' })).toEqual({ return: {} });
    const q = execute.graph.lookup('q');
    await q.write(0, new Uint8Array(4096).fill(7));
    await q.write(3 * MiB, new Uint8Array(200 * 1024).fill(7));
    await q.writeZeroes(15 * MiB, MiB);
    expect(await execute('block-dirty-bitmap-remove', { node: 'q', name: 'gone' })).toEqual({ return: {} });
    expect(await execute('blockdev-del', { 'node-name': 'q' })).toEqual({ return: {} });

    expect(infoBitmaps(path)).toEqual([
      { flags: ['auto'], name: 'fine', granularity: 512 },
      { flags: [], name: 'p2', granularity: 512 },
      { flags: ['auto'], name: 'p', granularity: 65536 },
    ]);
    expectQemuClean(path);
    const qemu = qemuBitmaps(path, ['p', 'fine', 'p2']);
    expect(qemu.info.get('p')).toMatchObject({
      count: 65536 + 262144 + MiB,
      recording: true,
      persistent: true,
    });
    expect(qemu.info.get('p2')).toMatchObject({ count: 0, recording: false });
    expect(qemu.info.get('fine')).toMatchObject({ count: 4096 + 200 * 1024 + MiB });

    // Reopened here: the same bits, and the flags QEMU reports.
    const img = await openRw(path);
    for (const name of ['p', 'fine', 'p2']) {
      expect(sha256Of(findBitmap(img.node, name)!), name).toBe(qemu.sha256.get(name));
    }
    expect(img.node.dirtyBitmaps.map((b) => b.info())).toEqual(
      ['p', 'p2', 'fine'].map((n) => qemu.info.get(n)),
    );
    await img.close();
    expectQemuClean(path);
  });

  it('block-dirty-bitmap-remove drops a stored bitmap from the image, the last one with the extension', async () => {
    const path = scratch.create('remove.qcow2', 4 * MiB);
    scratch.run('qemu-img', 'bitmap', '--add', path, 'a');
    scratch.run('qemu-img', 'bitmap', '--add', path, 'b');
    scratch.run('qemu-io', '-c', 'write 0 1M', path);
    const execute = await connect();
    await execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'q',
      file: { driver: 'file', filename: path },
    });
    expect(await execute('block-dirty-bitmap-remove', { node: 'q', name: 'a' })).toEqual({ return: {} });
    // Already gone from the image while the node is open.
    expect(infoBitmaps(path)).toEqual([{ flags: ['in-use', 'auto'], name: 'b', granularity: 65536 }]);
    expectQemuClean(path);
    expect(await execute('block-dirty-bitmap-remove', { node: 'q', name: 'b' })).toEqual({ return: {} });
    expect(await execute('blockdev-del', { 'node-name': 'q' })).toEqual({ return: {} });
    expect(infoBitmaps(path)).toBeUndefined();
    expectQemuClean(path);
    // Nothing left of the extension: the autoclear bit is off.
    expect(readFileSync(path).readBigUInt64BE(88) & 1n).toBe(0n);
  });

  it('an open and close that never touches the bitmaps leaves them consistent', async () => {
    const path = scratch.create('untouched.qcow2', 4 * MiB);
    scratch.run('qemu-img', 'bitmap', '--add', path, 'b');
    scratch.run('qemu-io', '-c', 'write 64k 1k', path);
    const img = await openRw(path);
    await img.close();
    expect(infoBitmaps(path)).toEqual([{ flags: ['auto'], name: 'b', granularity: 65536 }]);
    expect(qemuBitmaps(path, ['b']).info.get('b')).toMatchObject({ count: 65536 });
    expectQemuClean(path);
  });

  it('marks a bitmap left IN_USE (not closed cleanly) inconsistent, and keeps it so', async () => {
    const path = scratch.create('crash.qcow2', 4 * MiB);
    scratch.run('qemu-img', 'bitmap', '--add', path, 'b');
    const crashed = await openRw(path);
    // No close: the image stays as a killed process leaves it.
    void crashed;
    const img = await openRw(path, { 'node-name': 'n' });
    const b = findBitmap(img.node, 'b')!;
    expect(b.info()).toMatchObject({ inconsistent: true, persistent: true });
    expect(() => b.check(7)).toThrow("Bitmap 'b' is inconsistent and cannot be used");
    await img.close();
    expect(infoBitmaps(path)).toEqual([{ flags: ['in-use', 'auto'], name: 'b', granularity: 65536 }]);
  });

  it("refuses what QEMU refuses, with QEMU's texts", async () => {
    const v2 = scratch.create('v2.qcow2', 4 * MiB, 'compat=0.10');
    const execute = await connect();
    const file = (p: string) => ({ driver: 'file', filename: p });
    await execute('blockdev-add', { driver: 'qcow2', 'node-name': 'v2', file: file(v2) });
    await execute('blockdev-add', { driver: 'raw', 'node-name': 'r', file: { driver: 'memory', size: MiB } });
    const add = (node: string, name: string) =>
      execute('block-dirty-bitmap-add', { node, name, persistent: true });
    expect(await add('v2', 'p')).toEqual({
      error: {
        class: 'GenericError',
        desc: "Can't make bitmap 'p' persistent in 'v2': Cannot store dirty bitmaps in qcow2 v2 files",
      },
    });
    expect(await add('r', 'p')).toEqual({
      error: { class: 'GenericError', desc: "Can't store persistent bitmaps to r: Operation not supported" },
    });
    const v3 = scratch.create('v3.qcow2', 4 * MiB);
    await execute('blockdev-add', { driver: 'qcow2', 'node-name': 'v3', file: file(v3) });
    expect(await add('v3', 'n'.repeat(1024))).toEqual({
      error: {
        class: 'GenericError',
        desc: `Can't make bitmap '${'n'.repeat(1024)}' persistent in 'v3': Name length exceeds maximum (1023 characters)`,
      },
    });
  });
});
