/**
 * Whole images over http: a qcow2 made by qemu-img, read through qcow2-over-http, equals
 * qemu-img's own raw conversion (and QEMU's curl driver reads the same bytes from the test
 * server); a 5 GiB sparse image reads correctly at offsets above 4 GiB.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { TestHttpServer } from '../../support/http-server.ts';

// Async: the server answers from this process, so a blocking spawn would deadlock it.
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'blockgraph-http-'));
const path = (name: string) => join(dir, name);
let server: TestHttpServer;

beforeAll(async () => {
  server = await TestHttpServer.start();
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function readAll(options: Record<string, unknown>, offset: number, bytes: number): Promise<Buffer> {
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({ ...options, 'node-name': 'img', 'read-only': true });
  try {
    const buf = Buffer.alloc(bytes);
    await node.read(offset, buf);
    return buf;
  } finally {
    await graph.blockdevDel('img');
  }
}

it('a qcow2 made by qemu-img reads over http exactly as qemu-img converts it to raw', async () => {
  const qcow2 = path('img.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '4M']);
  const writes = [
    '-P 0x11 0 64k',
    '-P 0x22 100k 300k',
    '-P 0x33 3M 5000',
    '-z 120k 8k',
    '-P 0x44 4190000 4304',
  ];
  await run('qemu-io', ['-f', 'qcow2', ...writes.flatMap((w) => ['-c', `write ${w}`]), qcow2]);
  await run('qemu-img', ['convert', '-O', 'raw', qcow2, path('ref.raw')]);
  const ref = readFileSync(path('ref.raw'));
  const url = await server.serveFile('/img.qcow2', qcow2);

  const ours = await readAll(
    { driver: 'qcow2', file: { driver: 'http', url, 'chunk-size': 16384 } },
    0,
    ref.length,
  );
  expect(Buffer.compare(ours, ref)).toBe(0);

  // QEMU's curl driver reads the same image from the same test server.
  await run('qemu-img', ['convert', '-O', 'raw', url, path('curl.raw')]);
  expect(Buffer.compare(readFileSync(path('curl.raw')), ref)).toBe(0);
});

it('a 5 GiB sparse image reads correctly above 4 GiB', async () => {
  const size = 5 * 2 ** 30;
  const file = path('big.raw');
  const spots = [2 ** 32 - 3000, 2 ** 32 + 12_345, size - 4096];
  const fh = await openFile(file, 'w');
  await fh.truncate(size);
  const lengthAt = (at: number) => Math.min(6000, size - at);
  for (const [i, at] of spots.entries()) await fh.write(Buffer.alloc(lengthAt(at), i + 1), 0, undefined, at);
  await fh.close();
  const url = await server.serveFile('/big.raw', file);
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({ driver: 'http', url, 'node-name': 'big', 'read-only': true });
  expect(node.length()).toBe(size);
  for (const [i, at] of spots.entries()) {
    const buf = Buffer.alloc(8192);
    await node.read(at - 1000, buf);
    const n = lengthAt(at);
    const want = Buffer.concat([Buffer.alloc(1000), Buffer.alloc(n, i + 1), Buffer.alloc(8192 - 1000 - n)]);
    expect(Buffer.compare(buf, want), `at ${at}`).toBe(0);
  }
  // The request ranges carry offsets above 2^32 unmangled.
  expect(server.requests('/big.raw').some((r) => /^bytes=4295\d{6}-/.test(r.range ?? ''))).toBe(true);
  await graph.blockdevDel('big');
});
