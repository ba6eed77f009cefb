import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { setDefaultProtocol } from '../../../src/config/filename.ts';
import { registerBlob, unregisterBlob, type BlobLike } from '../../../src/drivers/protocol/blob.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { BLOB_FORMATS, BLOB_PROTOCOLS } from '../../conformance/entries-blob.ts';
import { formatSuite } from '../../conformance/format-suite.ts';
import { protocolSuite } from '../../conformance/protocol-suite.ts';

// The browser run takes the same rows (entries-browser.ts); Node has Blob too.
protocolSuite({ describe, it }, BLOB_PROTOCOLS);
formatSuite({ describe, it }, BLOB_FORMATS);

const GiB = 2 ** 30;

/**
 * A Blob-like of `size` bytes whose byte at offset o is (o / 4096 + o) mod 256, computed in
 * 64-bit-safe arithmetic, that records every slice taken. Node's Blob stops at 4 GiB.
 */
function patternBlob(size: number): BlobLike & { slices: [number, number][] } {
  const slices: [number, number][] = [];
  return {
    size,
    slices,
    slice(start, end) {
      slices.push([start, end]);
      // As Blob.slice: clipped to the size.
      const len = Math.max(0, Math.min(end, size) - start);
      return { arrayBuffer: async () => patternAt(start, len).buffer as ArrayBuffer };
    },
  };
}

function patternAt(offset: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (Math.floor((offset + i) / 4096) + offset + i) % 256;
  return out;
}

/** Index of the first byte where `a` and `b` differ, or -1 (toEqual is slow on megabytes). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  return a.findIndex((x, i) => x !== b[i]);
}

let names: string[] = [];
function register(name: string, blob: BlobLike): string {
  registerBlob(name, blob);
  names.push(name);
  return name;
}
afterEach(() => {
  for (const name of names) unregisterBlob(name);
  names = [];
  setDefaultProtocol('file');
});

async function openBlob(name: string, extra: Record<string, unknown> = { 'read-only': true }) {
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({ driver: 'blob', name, 'node-name': 'b', ...extra });
  return { graph, node };
}

describe('blob', () => {
  it('reads at offsets above 2^32 exactly, in slices of at most 4 MiB', async () => {
    const blob = patternBlob(5 * GiB + 1000);
    const { node } = await openBlob(register('big', blob));
    expect(node.length()).toBe(5 * GiB + 1024);
    const offset = 2 ** 32 + 123_457;
    const dst = new Uint8Array(10 << 20);
    await node.read(offset, dst);
    expect(firstDiff(dst, patternAt(offset, dst.length))).toBe(-1);
    expect(blob.slices.map(([a, b]) => b - a)).toEqual([4 << 20, 4 << 20, 2 << 20]);
    expect(blob.slices[0]![0]).toBe(offset);
    // The tail: the Blob's last bytes, then zeros up to the sector boundary.
    const tail = new Uint8Array(100);
    await node.read(5 * GiB + 950, tail);
    expect(tail.subarray(0, 50)).toEqual(patternAt(5 * GiB + 950, 50));
    expect(tail.subarray(50).every((b) => b === 0)).toBe(true);
  });

  it('opens only read-only: refused read-write with curl-style text, auto-read-only falls back', async () => {
    register('img', new Blob([new Uint8Array(4096)]));
    await expect(openBlob('img', {})).rejects.toThrow(/^blob driver does not support writes$/);
    const { graph, node } = await openBlob('img', { 'auto-read-only': true });
    expect(node.readOnly).toBe(true);
    await expect(node.write(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EPERM' });
    expect(graph.nodes.get('b')).toBe(node);
  });

  it('an unregistered name fails as a missing file does in QEMU', async () => {
    await expect(openBlob('nope')).rejects.toThrow(/^Could not open 'nope': No such file or directory$/);
  });

  it('refuses a second Blob under a registered name; unregistering frees it', () => {
    register('dup', new Blob([]));
    expect(() => registerBlob('dup', new Blob([]))).toThrow("A blob named 'dup' is already registered");
    expect(unregisterBlob('dup')).toBe(true);
    expect(unregisterBlob('dup')).toBe(false);
    names = [];
  });

  it('turns a failed slice read into EIO naming the blob', async () => {
    const broken: BlobLike = {
      size: 4096,
      slice: () => ({
        arrayBuffer: () => Promise.reject(new Error('The requested file could not be read')),
      }),
    };
    const { node } = await openBlob(register('gone', broken));
    await expect(node.read(0, new Uint8Array(512))).rejects.toMatchObject({
      errno: 'EIO',
      message: "Could not read blob 'gone': The requested file could not be read",
    });
  });
});

describe('blob as the default protocol (the worker)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-blob-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const img = (name: string) => join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img('base.qcow2'), '1M']);
  execFileSync('qemu-io', ['-c', 'write -q -P 0x5a 4096 8192', img('base.qcow2')]);
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    'base.qcow2',
    '-F',
    'qcow2',
    img('top.qcow2'),
  ]);
  execFileSync('qemu-io', ['-c', 'write -q -P 0xa5 8192 512', img('top.qcow2')]);
  const blobOf = (name: string) => new Blob([readFileSync(img(name))]);

  it("opens a qcow2's backing file from the Blob registered under its name", async () => {
    setDefaultProtocol('blob');
    register('base.qcow2', blobOf('base.qcow2'));
    register('top.qcow2', blobOf('top.qcow2'));
    const graph = new BlockGraph();
    const top = await graph.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'top',
      'read-only': true,
      file: { driver: 'blob', name: 'top.qcow2' },
    });
    const backing = top.childList.find((c) => c.role === 'backing')!.node;
    expect(backing.driver.name).toBe('qcow2');
    expect(backing.primaryChild()!.options).toMatchObject({ driver: 'blob', name: 'base.qcow2' });
    const got = new Uint8Array(12_288);
    await top.read(4096, got);
    const want = new Uint8Array(12_288).fill(0x5a, 0, 8192).fill(0xa5, 4096, 4608);
    expect(firstDiff(got, want)).toBe(-1);
  });

  it("names a missing backing Blob with QEMU's text", async () => {
    setDefaultProtocol('blob');
    register('top.qcow2', blobOf('top.qcow2'));
    const graph = new BlockGraph();
    const open = graph.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'top',
      'read-only': true,
      file: { driver: 'blob', name: 'top.qcow2' },
    });
    // qemu-io -r top.qcow2 without base.qcow2 beside it says exactly this after "can't open device".
    await expect(open).rejects.toThrow(
      /^Could not open backing file: Could not open 'base.qcow2': No such file or directory$/,
    );
    expect(graph.nodes.size).toBe(0);
  });
});
