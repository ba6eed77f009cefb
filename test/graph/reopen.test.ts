/**
 * blockdev-reopen's effect on the drivers (graph/reopen.ts): read-only ↔ read-write on a qcow2
 * image and its file (the file reopened writable before the format opens its writer, and the
 * format written back before its file turns read-only), raw's window changed in place, and the
 * children a node opened itself following it to read-only.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { reopen } from '../../src/graph/reopen.ts';
import { tempDir } from '../cli/helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

describe('blockdev-reopen', () => {
  it('turns a read-only qcow2 image writable and back, its file with it', async () => {
    const path = tmp.path('rw.qcow2');
    tool('qemu-img', ['create', '-q', '-f', 'qcow2', path, '1M']);
    const graph = new BlockGraph();
    const q = await graph.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'q',
      'read-only': true,
      file: { driver: 'file', 'node-name': 'f', filename: path },
    });
    const f = graph.lookup('f');
    await expect(q.write(0, new Uint8Array(512))).rejects.toThrow();
    const file = { driver: 'file', 'node-name': 'f', filename: path };
    await reopen(graph, [{ driver: 'qcow2', 'node-name': 'q', file: 'f' }, file]);
    expect([q.readOnly, f.readOnly]).toEqual([false, false]);
    const blk = new BlockBackend(graph, 'd0');
    blk.insert(q);
    await blk.write(4096, new Uint8Array(4096).fill(0x5a));
    await blk.flush();
    // Read-only again while a writer is attached: refused with the reopen text, nothing changed.
    await expect(
      reopen(graph, [{ driver: 'qcow2', 'node-name': 'q', file: 'f', 'read-only': true }]),
    ).rejects.toThrow("Read-only block node 'q' cannot support read-write users");
    expect(q.readOnly).toBe(false);
    await blk.close();
    // The file was opened by q: it follows q to read-only.
    await reopen(graph, [{ driver: 'qcow2', 'node-name': 'q', file: 'f', 'read-only': true }]);
    expect([q.readOnly, f.readOnly]).toEqual([true, true]);
    const got = new Uint8Array(4096);
    await q.read(4096, got);
    expect(got.every((b) => b === 0x5a)).toBe(true);
    await graph.blockdevDel('q');
    expect(tool('qemu-img', ['check', path]).status).toBe(0);
    const io = tool('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x5a 4096 4096', path]);
    expect(io.stdout).toContain('read 4096/4096 bytes');
  });

  it("changes raw's window in place, checked as at open", async () => {
    const path = tmp.path('window.raw');
    writeFileSync(
      path,
      Uint8Array.from({ length: 4096 }, (_, i) => i >> 9),
    );
    const graph = new BlockGraph();
    const r = await graph.blockdevAdd({
      driver: 'raw',
      'node-name': 'r',
      file: { driver: 'file', filename: path },
    });
    const ops = r.ops;
    await reopen(graph, [
      { driver: 'raw', 'node-name': 'r', file: r.child('file')!.nodeName, offset: 1024, size: 1024 },
    ]);
    expect(r.ops).toBe(ops);
    expect(r.length()).toBe(1024);
    const got = new Uint8Array(1);
    await r.read(512, got);
    expect(got[0]).toBe(3);
    await expect(
      reopen(graph, [
        { driver: 'raw', 'node-name': 'r', file: r.child('file')!.nodeName, offset: 0, size: 1000 },
      ]),
    ).rejects.toThrow('Specified size is not multiple of 512');
    expect(r.length()).toBe(1024);
    await graph.blockdevDel('r');
  });
});
