import { withProbedFormat } from '../../../src/graph/probe.ts';
import { requestAlignment } from '../../../src/block/alignment.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-raw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;

/** raw over a memory node named 'mem' of `size` bytes, so tests can look at the child too. */
async function rawOverMemory(size: number, raw: Record<string, unknown> = {}) {
  const graph = new BlockGraph();
  const mem = await graph.blockdevAdd({ driver: 'memory', size, 'node-name': 'mem' });
  const node = await graph.blockdevAdd({ driver: 'raw', file: 'mem', ...raw });
  return { mem, node };
}

// Texts captured from qemu-io --image-opts and QMP blockdev-add, QEMU 7.2.
describe('raw: offset and size are checked against the child', () => {
  it('offset beyond the child', async () => {
    await expect(rawOverMemory(MiB, { offset: 2000000 })).rejects.toThrow(
      'Offset (2000000) cannot be greater than size of the containing file (1048576)',
    );
  });

  it('offset + size beyond the child (with QEMU doubled space)', async () => {
    await expect(rawOverMemory(MiB, { offset: 1000, size: MiB })).rejects.toThrow(
      'The sum of offset (1000) and size (1048576) has to be smaller or equal to the  actual size of the containing file (1048576)',
    );
    await expect(rawOverMemory(MiB, { size: 2 * MiB })).rejects.toThrow(
      'The sum of offset (0) and size (2097152) has to be smaller or equal to the  actual size of the containing file (1048576)',
    );
  });

  it('size not a multiple of 512', async () => {
    await expect(rawOverMemory(MiB, { size: 1000 })).rejects.toThrow('Specified size is not multiple of 512');
  });

  it('an offset equal to the child size gives an empty image', async () => {
    expect((await rawOverMemory(MiB, { offset: MiB })).node.length()).toBe(0);
  });
});

describe('raw: requests are shifted by offset and kept inside size', () => {
  it('reads and writes land at offset in the child', async () => {
    const { mem, node } = await rawOverMemory(MiB, { offset: 1000, size: 4096 });
    expect(node.length()).toBe(4096);
    await node.write(10, new Uint8Array([1, 2, 3]));
    const child = new Uint8Array(3);
    await mem.read(1010, child);
    expect([...child]).toEqual([1, 2, 3]);
    expect(await node.blockStatus(0, 4096)).toMatchObject({ offset: 1000 });
  });

  it('refuses writes leaving the window with ENOSPC, never touching the child', async () => {
    const { mem, node } = await rawOverMemory(MiB, { offset: 512, size: 1024 });
    await expect(node.write(1000, new Uint8Array(100).fill(9))).rejects.toMatchObject({ errno: 'ENOSPC' });
    await expect(node.writeZeroes(1023, 2)).rejects.toMatchObject({ errno: 'ENOSPC' });
    const child = new Uint8Array(MiB);
    await mem.read(0, child);
    expect(child.every((b) => b === 0)).toBe(true);
  });

  it('with size, cannot be resized (qemu-io: Cannot resize fixed-size raw disks)', async () => {
    const { node } = await rawOverMemory(MiB, { size: 4096 });
    await expect(node.truncate(8192)).rejects.toMatchObject({
      errno: 'ENOTSUP',
      message: 'Cannot resize fixed-size raw disks',
    });
  });

  it('with only an offset, truncate resizes the child to offset + length', async () => {
    const { mem, node } = await rawOverMemory(MiB, { offset: 512 });
    expect(node.length()).toBe(MiB - 512);
    await node.truncate(2 * MiB);
    expect(mem.length()).toBe(2 * MiB + 512);
    expect(node.length()).toBe(2 * MiB);
  });

  it('without size, the length follows the child', async () => {
    const { mem, node } = await rawOverMemory(4096, { offset: 100 });
    await mem.write(10_000, new Uint8Array(1));
    // The child is 10240 bytes as a node (whole sectors); raw's window is that minus the offset.
    expect(node.length()).toBe(10_240);
  });

  it('a fixed size shrinks with the child and never grows back (raw_getlength)', async () => {
    const { mem, node } = await rawOverMemory(8192, { size: 8192 });
    await mem.truncate(4096);
    expect(node.length()).toBe(4096);
    await mem.truncate(8192);
    expect(node.length()).toBe(4096);
  });
});

describe('raw over file: interop with qemu-io', () => {
  it('reads bit-exact what qemu-io wrote', async () => {
    const path = join(dir, 'from-qemu.raw');
    writeFileSync(path, new Uint8Array(256 * 1024));
    execFileSync('qemu-io', [
      '-f',
      'raw',
      '-c',
      'write -P 0xab 0 64k',
      '-c',
      'write -P 0x5c 100000 777',
      path,
    ]);
    const node = await new BlockGraph().blockdevAdd({
      driver: 'raw',
      file: { driver: 'file', filename: path },
    });
    const all = new Uint8Array(256 * 1024);
    await node.read(0, all);
    expect(Buffer.from(all).equals(readFileSync(path))).toBe(true);
    expect(all.subarray(0, 65536).every((b) => b === 0xab)).toBe(true);
    expect(all.subarray(100000, 100777).every((b) => b === 0x5c)).toBe(true);
    expect(all[100777]).toBe(0);
  });

  it('writes what qemu-io reads back with read -P, through offset as well', async () => {
    const path = join(dir, 'to-qemu.raw');
    writeFileSync(path, new Uint8Array(256 * 1024));
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({
      driver: 'raw',
      offset: 4096,
      'node-name': 'r',
      file: { driver: 'file', filename: path },
    });
    await node.write(0, new Uint8Array(65536).fill(0xcd));
    await node.flush();
    await graph.blockdevDel('r');
    const out = execFileSync(
      'qemu-io',
      [
        '--image-opts',
        '-c',
        'read -P 0xcd 0 64k',
        '-c',
        'read -P 0 64k 4k',
        `driver=raw,offset=4096,file.driver=file,file.filename=${path}`,
      ],
      { encoding: 'utf8' },
    );
    expect(out).not.toMatch(/Pattern verification failed/);
    expect(out).toMatch(/read 65536\/65536 bytes at offset 0/);
    expect(out).toMatch(/read 4096\/4096 bytes at offset 65536/);
  });
});

describe('raw: opened by probing (bs->probed)', () => {
  const qcow2Head = (): Uint8Array => {
    const head = new Uint8Array(512);
    head.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]); // 'QFI\xfb', version 3
    return head;
  };

  it('refuses a first-sector write that would make the image probe as another format', async () => {
    const graph = new BlockGraph();
    const options = await withProbedFormat(graph, { file: { driver: 'memory', size: MiB } }, 'qmp');
    expect(options.driver).toBe('raw');
    const node = await graph.open(options);
    await expect(node.write(0, qcow2Head())).rejects.toMatchObject({ errno: 'EPERM' });
    const head = new Uint8Array(512);
    await node.read(0, head);
    expect(head.every((b) => b === 0)).toBe(true);
    // Anything that still probes as raw, and any later sector, may be written.
    await node.write(0, new Uint8Array(512).fill(7));
    await node.write(512, qcow2Head());
    // Whole first sectors only, so the check always sees what the sector will hold.
    expect(requestAlignment(node)).toBe(512);
  });

  it('leaves an image whose format the user named alone', async () => {
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'raw', file: { driver: 'memory', size: MiB } });
    await node.write(0, qcow2Head());
    expect(requestAlignment(node)).toBe(1);
  });
});
