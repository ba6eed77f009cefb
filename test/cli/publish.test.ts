/**
 * `blockgraph publish` and the http driver's chunked layout: an image published from qcow2 (made
 * by qemu-img) reads back over http equal to qemu-img's raw conversion, from a server that serves
 * no byte ranges at all; zero chunks have no file and read as zeros without a request; zstd
 * chunks, from `-z` or from Debian's zstd tool, decode.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { run as publish } from '../../src/cli/publish.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { TestHttpServer } from '../support/http-server.ts';
import { runOurs, tempDir } from './helpers.ts';

const exec = promisify(execFile);
const tmp = tempDir();
const KiB = 1024;
let server: TestHttpServer;
let ref: Buffer;
const qcow2 = tmp.path('src.qcow2');

beforeAll(async () => {
  server = await TestHttpServer.start();
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '2M']);
  const writes = ['-P 0x11 0 100k', '-P 0x22 700k 64k', '-P 0x33 2000k 48k'];
  await exec('qemu-io', ['-f', 'qcow2', ...writes.flatMap((w) => ['-c', `write ${w}`]), qcow2]);
  await exec('qemu-img', ['convert', '-O', 'raw', qcow2, tmp.path('ref.raw')]);
  ref = readFileSync(tmp.path('ref.raw'));
});
afterAll(async () => {
  await server.close();
  tmp.cleanup();
});
afterEach(() => server.reset());

/** Publishes the qcow2 into a new directory served at /<name>/; returns the manifest URL. */
async function published(name: string, extra: string[] = []): Promise<{ url: string; dir: string }> {
  const dir = tmp.path(name);
  const out = await runOurs(publish, [...extra, qcow2, dir]);
  expect(out.stderr).toBe('');
  expect(out.status).toBe(0);
  return { url: `${server.serveDir(`/${name}/`, dir)}manifest.json`, dir };
}

async function openChunked(url: string) {
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({
    driver: 'http',
    layout: 'chunked',
    url,
    'node-name': 'c',
    'read-only': true,
  });
  return { node, close: () => graph.blockdevDel('c') };
}

async function readAll(url: string): Promise<Buffer> {
  const { node, close } = await openChunked(url);
  const buf = Buffer.alloc(node.length());
  await node.read(0, buf);
  await close();
  return buf;
}

describe('publish', () => {
  it('writes only data chunks and a manifest; reading it back equals the source, without ranges', async () => {
    const { url, dir } = await published('plain', ['-c', '64k']);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    // Data at 0-100k (chunks 0, 1), 700k-764k (10, 11), 2000k-2048k (31).
    expect(manifest).toEqual({
      'blockgraph-chunked': 1,
      size: 2 * 1024 * KiB,
      'chunk-size': 64 * KiB,
      chunks: { 0: 'raw', 1: 'raw', 10: 'raw', 11: 'raw', 31: 'raw' },
    });
    expect(readdirSync(join(dir, 'chunks')).sort()).toEqual(['0', '1', '10', '11', '31']);
    server.misbehave.noRanges = true;
    expect(Buffer.compare(await readAll(url), ref)).toBe(0);
    // One GET for the manifest and one per present chunk; absent chunks cost nothing.
    expect(server.log.filter((r) => r.method === 'GET')).toHaveLength(1 + 5);
  });

  it('block status reports absent chunks as zeros', async () => {
    const { url } = await published('status', ['-c', '64k']);
    const { node, close } = await openChunked(url);
    expect(await node.blockStatus(0, 2 * 1024 * KiB)).toMatchObject({
      bytes: 128 * KiB,
      data: true,
      zero: false,
    });
    expect(await node.blockStatus(128 * KiB, 2 * 1024 * KiB - 128 * KiB)).toMatchObject({
      bytes: 512 * KiB,
      data: false,
      zero: true,
    });
    await close();
  });

  it('-z stores zstd chunks, which decode to the source', async () => {
    const { url, dir } = await published('zstd', ['-z']);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest['chunk-size']).toBe(256 * KiB);
    expect(manifest.chunks).toEqual({ 0: 'zstd', 2: 'zstd', 7: 'zstd' });
    expect(readFileSync(join(dir, 'chunks/0.zst')).length).toBeLessThan(4 * KiB);
    expect(Buffer.compare(await readAll(url), ref)).toBe(0);
  });

  it("chunks compressed by Debian's zstd tool decode too", async () => {
    const { url, dir } = await published('cli-zstd', ['-c', '64k']);
    const manifestPath = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    for (const index of ['1', '31']) {
      await exec('zstd', [
        '-q',
        '--rm',
        join(dir, 'chunks', index),
        '-o',
        join(dir, 'chunks', `${index}.zst`),
      ]);
      manifest.chunks[index] = 'zstd';
    }
    writeFileSync(manifestPath, JSON.stringify(manifest));
    expect(Buffer.compare(await readAll(url), ref)).toBe(0);
  });

  it('refuses a chunk size that is not a multiple of 512', async () => {
    const out = await runOurs(publish, ['-c', '1000', qcow2, tmp.path('bad')]);
    expect(out).toEqual({
      stdout: '',
      stderr: 'blockgraph: Chunk size must be a non-zero multiple of 512\n',
      status: 1,
    });
  });
});

describe('layout=chunked errors', () => {
  it('a missing manifest, an invalid one, and chunk-size given with the layout', async () => {
    const { url, dir } = await published('errors', ['-c', '64k']);
    await expect(openChunked(`${server.origin}/errors/none.json`)).rejects.toThrow(
      'CURL: Error opening file: The requested URL returned error: 404',
    );
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ 'blockgraph-chunked': 1, size: 4096, 'chunk-size': 1000, chunks: {} }),
    );
    await expect(openChunked(`${server.origin}/errors/bad.json`)).rejects.toThrow(
      'CURL: Error opening file: Invalid chunked-layout manifest: bad chunk-size 1000 (a multiple of 512 is needed)',
    );
    await expect(
      new BlockGraph().blockdevAdd({
        driver: 'http',
        layout: 'chunked',
        url,
        'chunk-size': 4096,
        'read-only': true,
      }),
    ).rejects.toThrow("'chunk-size' cannot be set with layout=chunked: the manifest sets it");
  });

  it('a chunk file that is gone or the wrong length fails the read with EIO', async () => {
    const { url, dir } = await published('broken', ['-c', '64k']);
    rmSync(join(dir, 'chunks', '10'));
    writeFileSync(join(dir, 'chunks', '31'), new Uint8Array(100));
    const { node, close } = await openChunked(url);
    await expect(node.read(10 * 64 * KiB, new Uint8Array(512))).rejects.toMatchObject({
      errno: 'EIO',
      message: expect.stringContaining('The requested URL returned error: 404'),
    });
    await expect(node.read(31 * 64 * KiB, new Uint8Array(512))).rejects.toThrow(
      /holds 100 bytes, expected 65536/,
    );
    await close();
  });
});
