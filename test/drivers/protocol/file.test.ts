import { openSync, closeSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileDriver } from '../../../src/drivers/protocol/file.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function add(options: Record<string, unknown>) {
  return new BlockGraph().blockdevAdd({ driver: 'file', ...options });
}

/** True when opening `path` read-write fails with EACCES even for this user (root bypasses modes). */
function refusesWrite(path: string): boolean {
  try {
    closeSync(openSync(path, 'r+'));
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'EACCES';
  }
}

// Texts captured from qemu-system-x86_64 7.2 QMP blockdev-add and qemu-io.
describe('file: open errors name the path, as QEMU', () => {
  it('ENOENT', async () => {
    await expect(add({ filename: '/nonexistent' })).rejects.toThrow(
      "Could not open '/nonexistent': No such file or directory",
    );
  });

  it('a directory opened read-write fails in open(2)', async () => {
    await expect(add({ filename: dir })).rejects.toThrow(`Could not open '${dir}': Is a directory`);
  });

  it('a directory opened read-only is refused as not a regular file', async () => {
    await expect(add({ filename: dir, 'read-only': true })).rejects.toThrow(
      `'file' driver requires '${dir}' to be a regular file`,
    );
  });

  it.skipIf(!refusesWrite('/sys/kernel/notes'))('EACCES', async () => {
    await expect(add({ filename: '/sys/kernel/notes' })).rejects.toThrow(
      "Could not open '/sys/kernel/notes': Permission denied",
    );
  });

  it('validates locking and aio as enums', async () => {
    const path = join(dir, 'enum.img');
    writeFileSync(path, new Uint8Array(512));
    await expect(add({ filename: path, aio: 'bogus' })).rejects.toThrow(
      "Parameter 'aio' does not accept value 'bogus'",
    );
    await expect(add({ filename: path, locking: 'maybe' })).rejects.toThrow(
      "Parameter 'locking' does not accept value 'maybe'",
    );
    const node = await add({ filename: path, aio: 'io_uring', locking: 'off' });
    expect(node.length()).toBe(512);
  });
});

describe('file: I/O', () => {
  it('writes reach the host file, extend it, and truncate resizes it', async () => {
    const path = join(dir, 'io.img');
    writeFileSync(path, new Uint8Array(1024));
    const node = await add({ filename: path });
    expect(node.filename()).toBe(path);
    await node.write(2000, new Uint8Array([1, 2, 3]), { fua: true });
    expect(node.length()).toBe(2048); // whole sectors, like bdrv_getlength()
    const host = readFileSync(path);
    expect(host.length).toBe(2003);
    expect([...host.subarray(2000)]).toEqual([1, 2, 3]);
    await node.truncate(100);
    expect(readFileSync(path).length).toBe(100);
    expect(node.length()).toBe(512);
  });

  it('a read-only node reads the file and leaves it unchanged', async () => {
    const path = join(dir, 'ro.img');
    writeFileSync(path, new Uint8Array([5, 6, 7]));
    const node = await add({ filename: path, 'read-only': true });
    const buf = new Uint8Array(3);
    await node.read(0, buf);
    expect([...buf]).toEqual([5, 6, 7]);
    await expect(node.write(0, new Uint8Array([9]))).rejects.toMatchObject({ errno: 'EPERM' });
    expect([...readFileSync(path)]).toEqual([5, 6, 7]);
  });

  it('parses file: legacy filenames literally after the prefix', () => {
    expect(fileDriver.parseFilename('file:/a/b:c,d')).toEqual({ filename: '/a/b:c,d' });
  });
});
