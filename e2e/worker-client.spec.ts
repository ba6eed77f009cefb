/**
 * The page's client for the blockgraph worker (src/client) in real Chromium: QMP with events and
 * error classes, drive handles that transfer their buffers, the `blob` driver over Files the page
 * was given (beyond 4 GiB, and a qcow2 whose backing file is another File), snapshot=on, and a
 * worker that never loads.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';

test.beforeEach(async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
});

test('QMP: return values, events and errors with their class', async ({ page }) => {
  const result = await page.evaluate(async () => {
    const bg = window.blockgraph;
    const events: string[] = [];
    bg.onEvent((e) => events.push(`${e.event}:${typeof e.timestamp.seconds}`));
    await bg.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0', size: 1 << 20 });
    const nodes = await bg.execute<{ 'node-name': string; drv: string }[]>('query-named-block-nodes');
    await bg.execute('blockdev-del', { 'node-name': 'n0' });
    const error = await bg.execute('blockdev-del', { 'node-name': 'zz' }).then(
      () => null,
      (e: Error & { errorClass?: string }) => ({
        name: e.name,
        errorClass: e.errorClass,
        message: e.message,
      }),
    );
    const missing = await bg.execute('no-such-command').catch((e: { errorClass?: string }) => e.errorClass);
    await bg.execute('stop');
    await bg.execute('cont');
    // Events travel apart from returns: wait a moment for the last one.
    for (let i = 0; i < 50 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    return { nodes: nodes.map((n) => `${n['node-name']}/${n.drv}`), error, missing, events };
  });
  expect(result).toEqual({
    nodes: ['n0/null-co'],
    error: {
      name: 'QmpError',
      errorClass: 'GenericError',
      message: "Failed to find node with node-name='zz'",
    },
    missing: 'CommandNotFound',
    events: ['STOP:number', 'RESUME:number'],
  });
});

test('drive handles transfer their buffers both ways', async ({ page }) => {
  const result = await page.evaluate(async () => {
    const bg = window.blockgraph;
    const drive = await bg.addDrive({ id: 'd0', node: { driver: 'memory', size: 4 << 20 } });
    const data = new Uint8Array(1 << 20).map((_, i) => i % 253);
    await drive.write(4096, data);
    const detached = data.byteLength === 0;
    await drive.flush();
    const back = await drive.read(4096, 1 << 20);
    const same = back.every((b, i) => b === i % 253);
    await drive.discard(0, 4 << 20);
    const discarded = (await drive.read(4096, 512)).every((b) => b === 0);
    const length = await drive.length();
    await drive.close();
    const gone = await drive
      .length()
      .catch((e: Error & { errorClass?: string }) => `${e.errorClass}: ${e.message}`);
    return { detached, same, backLength: back.byteLength, discarded, length, size: drive.size, gone };
  });
  expect(result).toEqual({
    detached: true,
    same: true,
    backLength: 1 << 20,
    discarded: true,
    length: 4 << 20,
    size: 4 << 20,
    gone: "DeviceNotFound: Device 'd0' not found",
  });
});

test('blob: a File beyond 4 GiB reads right at offsets above 2^32', async ({ page }) => {
  const result = await page.evaluate(async () => {
    const bg = window.blockgraph;
    const MiB = 1 << 20;
    const pattern = new Blob([new Uint8Array(MiB).map((_, i) => i % 251)]);
    const marker = new Blob([new Uint8Array(MiB).fill(0x77)]);
    // 5200 references to two 1 MiB Blobs: ~2 MiB of memory for a 5.08 GiB File. The marker sits
    // at 4 GiB + 7 MiB, where offsets cut to 32 bits would read the pattern at 7 MiB instead.
    const parts: Blob[] = Array(5200).fill(pattern);
    parts[4096 + 7] = marker;
    const name = await bg.registerBlob(new File(parts, 'big.img'));
    await bg.execute('blockdev-add', {
      driver: 'raw',
      'node-name': 'big',
      'read-only': true,
      file: { driver: 'blob', name },
    });
    const drive = await bg.addDrive({ id: 'd-big', node: 'big', readOnly: true });
    const at = async (offset: number, len: number) => Array.from(await drive.read(offset, len));
    const rw = await bg
      .execute('blockdev-add', { driver: 'blob', 'node-name': 'rw', name })
      .catch((e: Error) => e.message);
    return {
      name,
      size: drive.size,
      marker: await at(2 ** 32 + 7 * MiB - 2, 4),
      patternAbove: await at(2 ** 32 + 5 * MiB + 1000, 3),
      low: await at(7 * MiB, 2),
      end: await at(5200 * MiB - 2, 2),
      rw,
    };
  });
  expect(result).toEqual({
    name: 'big.img',
    size: 5200 * 2 ** 20,
    marker: [(2 ** 20 - 2) % 251, (2 ** 20 - 1) % 251, 0x77, 0x77],
    patternAbove: [1000 % 251, 1001 % 251, 1002 % 251],
    low: [0, 1],
    end: [(2 ** 20 - 2) % 251, (2 ** 20 - 1) % 251],
    rw: 'blob driver does not support writes',
  });
});

test.describe('Files chosen by the user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-blob-'));
  test.afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '2M']);
  execFileSync('qemu-io', ['-c', 'write -q -P 0x5a 0 128k', base]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  execFileSync('qemu-io', ['-c', 'write -q -P 0xa5 64k 4k', top]);

  test('a qcow2 opens its backing file from the File registered under its name', async ({ page }) => {
    // What a file chooser (or a drop) gives the page: File objects backed by the files on disk.
    await page.evaluate(() => {
      const input = Object.assign(document.createElement('input'), {
        type: 'file',
        multiple: true,
        id: 'files',
      });
      document.body.append(input);
    });
    await page.setInputFiles('#files', [top, base]);
    const result = await page.evaluate(async () => {
      const bg = window.blockgraph;
      const files = [...(document.getElementById('files') as HTMLInputElement).files!];
      const names = [];
      for (const file of files) names.push(await bg.registerBlob(file));
      const missing = await bg
        .addDrive('file=nothere.qcow2,if=none,id=x,readonly=on')
        .catch((e: Error) => e.message);
      const drive = await bg.addDrive('file=top.qcow2,if=none,id=top,readonly=on');
      const at = async (offset: number) => Array.from(await drive.read(offset, 2));
      const nodes = await bg.execute<{ drv: string; file: string; ro: boolean }[]>('query-named-block-nodes');
      // snapshot=on over the same File: the guest may write, into memory.
      const snap = await bg.addDrive('file=top.qcow2,if=none,id=snap,snapshot=on');
      await snap.write(0, new Uint8Array(512).fill(0x33));
      const snapRead = Array.from(await snap.read(510, 4));
      const underneath = await at(510);
      return {
        names,
        missing,
        data: [await at(0), await at(65536), await at(131070), await at(131072)],
        nodes: nodes.map((n) => `${n.drv}:${n.file}:${n.ro}`).sort(),
        snapRead,
        underneath,
      };
    });
    expect(result).toEqual({
      names: ['top.qcow2', 'base.qcow2'],
      missing: "Could not open 'nothere.qcow2': No such file or directory",
      data: [
        [0x5a, 0x5a],
        [0xa5, 0xa5],
        [0x5a, 0x5a],
        [0, 0],
      ],
      nodes: ['blob:base.qcow2:true', 'blob:top.qcow2:true', 'qcow2:base.qcow2:true', 'qcow2:top.qcow2:true'],
      snapRead: [0x33, 0x33, 0x5a, 0x5a],
      underneath: [0x5a, 0x5a],
    });
  });
});

test('snapshot=on never writes the image', async ({ page }) => {
  const result = await page.evaluate(async () => {
    const bg = window.blockgraph;
    const image = 'file.driver=memory,file.store=e2e-snap,file.size=1M,format=raw,if=none';
    const snap = await bg.addDrive(`${image},id=snap,snapshot=on`);
    await snap.write(0, new Uint8Array(4096).fill(0xee));
    const seen = (await snap.read(0, 4096)).every((b) => b === 0xee);
    const top =
      await bg.execute<{ device: string; inserted: { drv: string; backing_file_depth: number } }[]>(
        'query-block',
      );
    await snap.close();
    const plain = await bg.addDrive(`${image},id=plain`);
    const untouched = (await plain.read(0, 4096)).every((b) => b === 0);
    return { seen, untouched, top: top.map((b) => `${b.device}:${b.inserted.drv}`) };
  });
  expect(result).toEqual({ seen: true, untouched: true, top: ['snap:qcow2'] });
});

test('a worker that fails to load rejects calls with a clear message', async ({ page }) => {
  const message = await page.evaluate(async () => {
    const Client = window.blockgraph.constructor as new (w: Worker) => typeof window.blockgraph;
    const client = new Client(new Worker('/no-such-worker.js', { type: 'module' }));
    const pending = client.execute('query-status').catch((e: Error) => e.message);
    const later = await pending;
    const again = await client.execute('query-status').catch((e: Error) => e.message);
    return { later, again };
  });
  expect(message.later).toMatch(/^blockgraph worker failed to load: /);
  expect(message.again).toBe(message.later);
});
