/**
 * The worker's API called directly in Node (no comlink): what the page gets through the client.
 * e2e/worker-*.spec.ts runs the same surface in a real Worker in Chromium.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QmpError } from '../../src/block/errors.ts';
import { setDefaultProtocol } from '../../src/config/filename.ts';
import { unregisterBlob } from '../../src/drivers/protocol/blob.ts';
import { deleteMemoryStore } from '../../src/drivers/protocol/memory.ts';
import { WasmIo } from '../../src/wasm/io.ts';
import { createWorkerApi, type QmpEvent } from '../../src/worker/api.ts';

const api = () => createWorkerApi(WasmIo.load());

afterEach(() => setDefaultProtocol('file'));

describe('execute', () => {
  it('returns QMP return values and answers commands in call order', async () => {
    const w = api();
    const add = w.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0', size: 4096 });
    const query = w.execute('query-named-block-nodes');
    expect(await add).toEqual({});
    const nodes = (await query) as { 'node-name': string; drv: string }[];
    expect(nodes.map((n) => [n['node-name'], n.drv])).toEqual([['n0', 'null-co']]);
    await w.execute('blockdev-del', { 'node-name': 'n0' });
    expect(await w.execute('query-named-block-nodes')).toEqual([]);
  });

  it('rejects with a QmpError of the response class and text', async () => {
    const w = api();
    const del = w.execute('blockdev-del', { 'node-name': 'zz' });
    await expect(del).rejects.toBeInstanceOf(QmpError);
    await expect(del).rejects.toMatchObject({
      errorClass: 'GenericError',
      message: "Failed to find node with node-name='zz'",
    });
    await expect(w.execute('no-such-command')).rejects.toMatchObject({
      errorClass: 'CommandNotFound',
      message: 'The command no-such-command has not been found',
    });
    // The connection is negotiated already, as a second qmp_capabilities shows.
    await expect(w.execute('qmp_capabilities')).rejects.toMatchObject({ errorClass: 'CommandNotFound' });
  });

  it('delivers events as QMP event objects', async () => {
    const w = api();
    const events: QmpEvent[] = [];
    w.subscribe((e) => events.push(e));
    await w.execute('stop');
    await w.execute('cont');
    expect(events.map((e) => e.event)).toEqual(['STOP', 'RESUME']);
    expect(events[0]!.timestamp.seconds).toBeGreaterThan(1.7e9);
    expect(events[0]).not.toHaveProperty('data');
  });

  it('refuses commands after quit instead of leaving them unanswered', async () => {
    const w = api();
    expect(await w.execute('quit')).toEqual({});
    await expect(w.execute('query-status')).rejects.toThrow('The QMP monitor has quit');
  });
});

describe('drives', () => {
  it('reads, writes, flushes, discards and sizes a drive over blockdev options', async () => {
    const w = api();
    const info = await w.addDrive({ id: 'd0', node: { driver: 'memory', size: 1 << 20 } });
    expect(info).toMatchObject({ id: 'd0', length: 1 << 20, readOnly: false });
    await w.driveWrite('d0', 4095, new Uint8Array([1, 2, 3]));
    await w.driveFlush('d0');
    expect([...(await w.driveRead('d0', 4094, 5))]).toEqual([0, 1, 2, 3, 0]);
    await w.driveDiscard('d0', 0, 65536);
    expect([...(await w.driveRead('d0', 4095, 3))]).toEqual([0, 0, 0]);
    expect(w.driveLength('d0')).toBe(1 << 20);
    const blocks = (await w.execute('query-block')) as { device: string }[];
    expect(blocks.map((b) => b.device)).toEqual(['d0']);
    await w.removeDrive('d0');
    expect(() => w.driveLength('d0')).toThrow(
      expect.objectContaining({ errorClass: 'DeviceNotFound', message: "Device 'd0' not found" }),
    );
    expect(await w.execute('query-named-block-nodes')).toEqual([]);
  });

  it('a drive over a monitor-owned node leaves the node when it goes', async () => {
    const w = api();
    await w.execute('blockdev-add', { driver: 'memory', 'node-name': 'm0', size: 65536 });
    await w.addDrive({ id: 'd1', node: 'm0' });
    await expect(w.execute('blockdev-del', { 'node-name': 'm0' })).rejects.toMatchObject({
      message: 'Node m0 is in use',
    });
    await w.removeDrive('d1');
    await w.execute('blockdev-del', { 'node-name': 'm0' });
  });

  it('-drive snapshot=on leaves the image untouched', async () => {
    const w = api();
    const image = 'file.driver=memory,file.store=api-snap,file.size=1M,format=raw,if=none';
    try {
      const snap = await w.addDrive(`${image},id=snap,snapshot=on`);
      expect(snap.length).toBe(1 << 20);
      await w.driveWrite('snap', 512, new Uint8Array(512).fill(0xee));
      expect((await w.driveRead('snap', 512, 512)).every((b) => b === 0xee)).toBe(true);
      await w.removeDrive('snap');
      const plain = await w.addDrive(`${image},id=plain`);
      expect(plain.readOnly).toBe(false);
      expect((await w.driveRead('plain', 0, 2048)).every((b) => b === 0)).toBe(true);
    } finally {
      deleteMemoryStore('api-snap');
    }
  });

  it('names registered Blobs, and plain -drive filenames open them where blob is the default', async () => {
    setDefaultProtocol('blob');
    const w = api();
    const file = new File([new Uint8Array(4096).fill(9)], 'disk.img');
    expect(w.registerBlob(file)).toBe('disk.img');
    expect(w.registerBlob(new Blob([new Uint8Array(512)]))).toMatch(/^blob\d+$/);
    try {
      // read-only=on: a Blob cannot take writes ("blob driver does not support writes" otherwise).
      await expect(w.addDrive('file=disk.img,format=raw,if=none,id=rw')).rejects.toThrow(
        'blob driver does not support writes',
      );
      const d = await w.addDrive('file=disk.img,format=raw,if=none,id=ro,readonly=on');
      expect(d.readOnly).toBe(true);
      expect([...(await w.driveRead('ro', 4092, 4))]).toEqual([9, 9, 9, 9]);
      expect(() => w.registerBlob(file)).toThrow("A blob named 'disk.img' is already registered");
      w.unregisterBlob('disk.img');
      expect(() => w.unregisterBlob('disk.img')).toThrow("No blob named 'disk.img' is registered");
    } finally {
      for (const name of ['disk.img', 'blob0', 'blob1']) unregisterBlob(name);
    }
  });
});
