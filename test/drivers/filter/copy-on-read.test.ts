/**
 * copy-on-read against QEMU 7.2: the same reads through qemu-io's copy-on-read node and through
 * ours, on twin images, must leave `qemu-img map` of the top image the same.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { prng, randomBytes } from '../../conformance/harness.ts';
import { TestHttpServer } from '../../support/http-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-cor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tool(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A qcow2 overlay at `path` over the qcow2 `backing`, with clusters of `clusterSize`. */
function overlay(path: string, backing: string, clusterSize: string): void {
  tool(
    'qemu-img',
    'create',
    '-q',
    '-f',
    'qcow2',
    '-o',
    `cluster_size=${clusterSize}`,
    '-b',
    backing,
    '-F',
    'qcow2',
    path,
  );
}

let serial = 0;

/**
 * base (4 KiB clusters: 0x11 at 0..64k, 0x22 at 512k..576k, zeros at 800k..808k) <- mid (0x33 at
 * 256k..264k) <- top (64 KiB clusters, empty). Returns the paths of a fresh chain.
 */
function chain(): { base: string; mid: string; top: string } {
  const p = (name: string) => join(dir, `${name}-${serial}.qcow2`);
  const paths = { base: p('base'), mid: p('mid'), top: p('top') };
  serial++;
  tool('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', paths.base, '1M');
  tool(
    'qemu-io',
    '-c',
    'write -P 0x11 0 64k',
    '-c',
    'write -P 0x22 512k 64k',
    '-c',
    'write -z 800k 8k',
    paths.base,
  );
  overlay(paths.mid, paths.base, '4k');
  tool('qemu-io', '-c', 'write -P 0x33 256k 8k', paths.mid);
  overlay(paths.top, paths.mid, '64k');
  return paths;
}

/** A twin of `c` (copies of all three files, the backing names still pointing at `c`'s). */
function twin(c: { base: string; mid: string; top: string }): { base: string; mid: string; top: string } {
  const t = { base: c.base, mid: c.mid, top: c.top.replace('.qcow2', '-twin.qcow2') };
  copyFileSync(c.top, t.top);
  return t;
}

/** `qemu-img map --output=json` of `path` without host offsets (they depend on allocation order). */
function map(path: string): unknown[] {
  return (JSON.parse(tool('qemu-img', 'map', '--output=json', path)) as Record<string, unknown>[]).map(
    ({ offset: _offset, ...rest }) => rest,
  );
}

/** The blockdev options of copy-on-read over `top`, `mid` named so `bottom` can refer to it. */
function corOptions(c: { mid: string; top: string }, bottom?: string): Record<string, unknown> {
  return {
    driver: 'copy-on-read',
    'node-name': 'cor',
    ...(bottom ? { bottom } : {}),
    file: {
      driver: 'qcow2',
      file: { driver: 'file', filename: c.top },
      backing: { driver: 'qcow2', 'node-name': 'mid', file: { driver: 'file', filename: c.mid } },
    },
  };
}

/** The qemu-io --image-opts string for the same node. */
function corImageOpts(c: { mid: string; top: string }, bottom?: string): string {
  return [
    'driver=copy-on-read',
    ...(bottom ? [`bottom=${bottom}`] : []),
    'file.driver=qcow2',
    'file.file.driver=file',
    `file.file.filename=${c.top}`,
    'file.backing.driver=qcow2',
    'file.backing.node-name=mid',
    'file.backing.file.driver=file',
    `file.backing.file.filename=${c.mid}`,
  ].join(',');
}

const READS: ReadonlyArray<readonly [number, number]> = [
  [1000, 100],
  [256 << 10, 4096],
  [520 << 10, 4096],
  [790 << 10, 20 << 10],
  [900 << 10, 4096],
];

/** Reads READS through our copy-on-read node; returns what each read saw. */
async function ourReads(options: Record<string, unknown>): Promise<Uint8Array[]> {
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd(options);
  const seen: Uint8Array[] = [];
  for (const [offset, bytes] of READS) {
    const buf = new Uint8Array(bytes);
    await node.read(offset, buf);
    seen.push(buf);
  }
  await graph.blockdevDel('cor');
  return seen;
}

function qemuReads(imageOpts: string): void {
  const cmds = READS.flatMap(([offset, bytes]) => ['-c', `read ${offset} ${bytes}`]);
  tool('qemu-io', '--image-opts', ...cmds, imageOpts);
}

describe('copy-on-read', () => {
  it('leaves the top holding every cluster read, as QEMU does (qemu-img map)', async () => {
    const ours = chain();
    const theirs = twin(ours);
    const seen = await ourReads(corOptions(ours));
    qemuReads(corImageOpts(theirs));
    const after = map(ours.top);
    expect(after).toEqual(map(theirs.top));
    // Every read range is now present in the top itself.
    for (const [offset, bytes] of READS) {
      const covering = (after as { start: number; length: number; depth: number; present: boolean }[]).filter(
        (e) => e.start < offset + bytes && offset < e.start + e.length,
      );
      expect(covering.every((e) => e.depth === 0 && e.present)).toBe(true);
    }
    expect(seen[0]!.every((b) => b === 0x11)).toBe(true);
    expect(seen[1]!.every((b) => b === 0x33)).toBe(true);
    expect(seen[2]!.every((b) => b === 0x22)).toBe(true);
    // The copied data is the backing data: the top alone now reads it.
    tool('qemu-io', '-c', 'read -P 0x22 512k 64k', '-c', 'read -P 0x33 256k 8k', ours.top);
    tool('qemu-img', 'check', ours.top);
  });

  it('bottom limits the copy to layers down to it, as QEMU does', async () => {
    const ours = chain();
    const theirs = twin(ours);
    await ourReads(corOptions(ours, 'mid'));
    qemuReads(corImageOpts(theirs, 'mid'));
    const after = map(ours.top);
    expect(after).toEqual(map(theirs.top));
    // Only mid's cluster came up; base's data and unallocated ranges stayed below.
    const local = (after as { start: number; depth: number }[]).filter((e) => e.depth === 0);
    expect(local.map((e) => e.start)).toEqual([256 << 10]);
  });

  it('refuses an unknown bottom with QEMU text', async () => {
    const c = chain();
    await expect(new BlockGraph().blockdevAdd(corOptions(c, 'nosuch'))).rejects.toThrow(
      "Bottom node 'nosuch' not found",
    );
  });

  it('a write overtaking a copy of its cluster is not undone by the copy', async () => {
    const c = chain();
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd(corOptions(c));
    const read = node.read(0, new Uint8Array(512));
    const write = node.write(4096, new Uint8Array(512).fill(0xee));
    await Promise.all([read, write]);
    const back = new Uint8Array(512);
    await node.read(4096, back);
    expect(back.every((b) => b === 0xee)).toBe(true);
    await graph.blockdevDel('cor');
    tool('qemu-io', '-c', 'read -P 0xee 4096 512', '-c', 'read -P 0x11 0 4096', c.top);
  });

  it('forwards writes, block status and flush to file', async () => {
    const c = chain();
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd(corOptions(c));
    expect(await node.blockStatus(512 << 10, 4096)).toMatchObject({ depth: 2, allocated: true });
    await node.write(128 << 10, new Uint8Array(64 << 10).fill(0x44));
    expect(await node.blockStatus(128 << 10, 4096)).toMatchObject({ depth: 0, data: true });
    await node.flush();
    await graph.blockdevDel('cor');
    tool('qemu-io', '-c', 'read -P 0x44 128k 64k', c.top);
  });
});

describe('copy-on-read in a live graph', () => {
  it('a new file child given by setChild is the one reads populate', async () => {
    const first = chain();
    const second = chain();
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd(corOptions(first));
    const other = await graph.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'other',
      file: { driver: 'file', filename: second.top },
    });
    await graph.setChild(node, 'file', other);
    await node.read(512 << 10, new Uint8Array(4096));
    await graph.blockdevDel('cor');
    await graph.blockdevDel('other');
    const local = (path: string) => (map(path) as { depth: number }[]).filter((e) => e.depth === 0).length;
    expect(local(second.top)).toBe(1);
    expect(local(first.top)).toBe(0);
  });
});

describe('copy-on-read over blkdebug', () => {
  it('signals cor_write before writing a copy back, failing that read as qemu-io does', async () => {
    const c = chain();
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({
      driver: 'copy-on-read',
      'node-name': 'cor',
      file: {
        driver: 'blkdebug',
        'inject-error': [{ event: 'cor_write', once: true }],
        image: { driver: 'qcow2', file: { driver: 'file', filename: c.top } },
      },
    });
    // Written straight into the top first, so reading it needs no copy.
    await node.write(0, new Uint8Array(65536).fill(1));
    const outcome = (offset: number) =>
      node.read(offset, new Uint8Array(4096)).then(
        () => 'ok',
        (err: { errno: string }) => err.errno,
      );
    // qemu-io 7.2, same stack: ok, ok, "read failed: Input/output error".
    expect([await outcome(0), await outcome(0), await outcome(512 << 10)]).toEqual(['ok', 'ok', 'EIO']);
    await graph.blockdevDel('cor');
  });
});

describe('copy-on-read over an HTTP backing image', () => {
  it('makes the disk local as it is used: a second read of a range costs no request', async () => {
    const server = await TestHttpServer.start();
    try {
      const image = randomBytes(prng(7), 1 << 20);
      const url = server.serveBytes('/base.raw', image);
      const top = join(dir, 'http-top.qcow2');
      tool('qemu-img', 'create', '-q', '-f', 'qcow2', top, '1M');
      const graph = new BlockGraph();
      const node = await graph.blockdevAdd({
        driver: 'copy-on-read',
        'node-name': 'cor',
        file: {
          driver: 'qcow2',
          file: { driver: 'file', filename: top },
          backing: { driver: 'raw', file: { driver: 'http', url, 'read-only': true, 'cache-size': 0 } },
        },
      });
      const read = async (offset: number, bytes: number) => {
        const buf = new Uint8Array(bytes);
        await node.read(offset, buf);
        expect(Buffer.compare(buf, image.subarray(offset, offset + bytes))).toBe(0);
      };
      const gets = () => server.requests('/base.raw').filter((r) => r.range !== 'bytes=0-0').length;
      await read(100_000, 5000);
      const first = gets();
      expect(first).toBeGreaterThan(0);
      await read(100_000, 5000);
      await read(65536, 65536);
      expect(gets()).toBe(first);
      await graph.blockdevDel('cor');
      // The top alone now holds the cluster read, with the backing image's bytes.
      const entries = map(top) as { start: number; length: number; depth: number; data: boolean }[];
      expect(entries.filter((e) => e.data)).toEqual([
        { start: 65536, length: 65536, depth: 0, data: true, present: true, zero: false },
      ]);
    } finally {
      await server.close();
    }
  });
});
