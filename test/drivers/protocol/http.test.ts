/**
 * The http/https drivers against a real local HTTP server (test/support/http-server.ts): QEMU's
 * option and open errors (texts captured from qemu-img / QMP blockdev-add with QEMU 7.2's curl
 * module), the server's failures, the cache, coalescing, the concurrency limit, timeouts, retries
 * and read-ahead, counted in the server's request log.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlockIOError } from '../../../src/block/errors.ts';
import type { BlockNode } from '../../../src/block/node.ts';
import { protocolOptions } from '../../../src/config/filename.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { TestHttpServer } from '../../support/http-server.ts';
import { httpRow, rawOverHttpRow } from '../../conformance/entries-browser.ts';
import { formatSuite } from '../../conformance/format-suite.ts';
import { prng, randomBytes } from '../../conformance/harness.ts';
import { protocolSuite } from '../../conformance/protocol-suite.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const IMAGE = randomBytes(prng(1), MiB);
let server: TestHttpServer;
let url: string;

beforeAll(async () => {
  server = await TestHttpServer.start();
  url = server.serveBytes('/img', IMAGE);
});
afterAll(() => server.close());
afterEach(() => server.reset());

const graphs: BlockGraph[] = [];
afterEach(async () => {
  for (const g of graphs.splice(0))
    for (const name of [...g.nodes.keys()]) await g.blockdevDel(name).catch(() => {});
});

/** Opens a read-only http node over `url` with `extra` options. */
async function open(extra: Record<string, unknown> = {}, driver = 'http'): Promise<BlockNode> {
  const graph = new BlockGraph();
  graphs.push(graph);
  return graph.blockdevAdd({ driver, 'node-name': 'h', 'read-only': true, url, ...extra });
}

async function read(node: BlockNode, offset: number, bytes: number): Promise<Uint8Array> {
  const buf = new Uint8Array(bytes);
  await node.read(offset, buf);
  return buf;
}

/** `got` equals the image's bytes at `offset` (Buffer.compare: fast on large arrays). */
function expectImage(got: Uint8Array, offset: number): void {
  const want = IMAGE.subarray(offset, offset + got.length);
  expect(want.length).toBe(got.length);
  expect(Buffer.compare(got, want), `bytes at ${offset}`).toBe(0);
}

/** GETs after the open's one-byte probe. */
const gets = () => server.requests('/img').filter((r) => r.range !== 'bytes=0-0');

describe('http: options and legacy filenames, as QEMU 7.2', () => {
  it('http:// and https:// filenames name the drivers with the whole URL', () => {
    expect(protocolOptions('http://h:8/a/b.qcow2?x=1')).toEqual({
      driver: 'http',
      url: 'http://h:8/a/b.qcow2?x=1',
    });
    expect(protocolOptions('https://h/x')).toEqual({ driver: 'https', url: 'https://h/x' });
  });

  it.each([
    [{ 'read-only': false }, 'curl driver does not support writes'],
    [{ readahead: 1000 }, 'HTTP_READAHEAD_SIZE 1000 is not a multiple of 512'],
    [{ timeout: 10_001 }, 'timeout parameter is too large or negative'],
    [{ timeout: -1 }, 'timeout parameter is too large or negative'],
    [
      { url: 'ftp://h/x' },
      "http curl driver cannot handle the URL 'ftp://h/x' (does not start with 'http://')",
    ],
    [{ url: undefined }, "Parameter 'url' is missing"],
  ])('refuses %j', async (extra, message) => {
    await expect(open(extra)).rejects.toThrow(message);
  });

  it('https checks its own scheme; sslverify=off cannot be honoured by fetch', async () => {
    await expect(open({}, 'https')).rejects.toThrow(
      `https curl driver cannot handle the URL '${url}' (does not start with 'https://')`,
    );
    await expect(open({ url: 'https://127.0.0.1:1/x', sslverify: false }, 'https')).rejects.toThrow(
      'sslverify=off is not supported',
    );
  });
});

describe('http: open errors', () => {
  it('404, as curl reports it', async () => {
    await expect(open({ url: `${server.origin}/missing` })).rejects.toThrow(
      'CURL: Error opening file: The requested URL returned error: 404',
    );
  });

  it('a server without byte ranges', async () => {
    server.misbehave.noRanges = true;
    await expect(open()).rejects.toThrow(
      "CURL: Error opening file: Server does not support 'range' (byte ranges).",
    );
  });

  it('a Content-Encoding on ranged responses', async () => {
    server.misbehave.contentEncoding = true;
    await expect(open()).rejects.toThrow(/Content-Encoding 'gzip'.*serve the image without compression/);
  });

  it('a refused connection is a network error (no CORS in Node), after the retries', async () => {
    const closed = await TestHttpServer.start();
    const dead = closed.zeroUrl(4096);
    await closed.close();
    await expect(open({ url: dead, retries: 1 })).rejects.toThrow(
      new RegExp(`^CURL: Error opening file: Failed to fetch '${dead}': network error \\(`),
    );
  });

  it('other statuses, after the retries for 5xx', async () => {
    server.misbehave.status = 500;
    await expect(open({ retries: 2 })).rejects.toThrow('The requested URL returned error: 500');
    expect(server.requests('/img')).toHaveLength(3);
  });
});

describe('http: reads', () => {
  it('reads every byte as served, any offset and length, and reports the size', async () => {
    const node = await open({ 'chunk-size': 4096 });
    expect(node.length()).toBe(MiB);
    expect(node.filename()).toBe(url);
    const rand = prng(2);
    for (let i = 0; i < 40; i++) {
      const len = 1 + rand(100_000);
      const offset = rand(MiB - len);
      expectImage(await read(node, offset, len), offset);
    }
    expectImage(await read(node, 0, MiB), 0);
  });

  it('a size that is not a multiple of 512 reads zeros after the end', async () => {
    const odd = server.serveBytes('/odd', IMAGE.subarray(0, 1000));
    const node = await open({ url: odd });
    expect(node.length()).toBe(1024);
    const got = await read(node, 0, 1024);
    expectImage(got.subarray(0, 1000), 0);
    expect(got.subarray(1000)).toEqual(new Uint8Array(24));
  });

  it('concurrent reads of one chunk make one request (coalescing)', async () => {
    const node = await open({ readahead: 0 });
    const offsets = [0, 100, 5000, 60_000];
    const reads = await Promise.all(offsets.map((o) => read(node, o, 1000)));
    reads.forEach((got, i) => expectImage(got, offsets[i]!));
    expect(gets().map((r) => r.range)).toEqual(['bytes=0-65535']);
  });

  it('cached chunks are not fetched again; the LRU keeps cache-size bytes', async () => {
    const node = await open({ readahead: 0, 'cache-size': 128 * KiB });
    await read(node, 0, 10);
    await read(node, 64 * KiB, 10);
    await read(node, 5, 10); // cached
    expect(gets()).toHaveLength(2);
    await read(node, 128 * KiB, 10); // evicts chunk 1 (chunk 0 was used more recently)
    await read(node, 0, 10);
    expect(gets()).toHaveLength(3);
    await read(node, 64 * KiB, 10);
    expect(
      gets()
        .map((r) => r.range)
        .at(-1),
    ).toBe('bytes=65536-131071');
  });

  it('at most max-requests are in flight', async () => {
    const node = await open({ readahead: 0, 'max-requests': 2 });
    server.misbehave.delayMs = 50;
    const offsets = [0, 3, 5, 7, 9, 11].map((c) => c * 64 * KiB);
    const got = await Promise.all(offsets.map((o) => read(node, o, 100)));
    got.forEach((g, i) => expectImage(g, offsets[i]!));
    expect(gets()).toHaveLength(6);
    expect(server.peakInFlight).toBe(2);
  });

  it('a read beyond `timeout` fails with EIO', async () => {
    const node = await open({ timeout: 1, retries: 0 });
    server.misbehave.delayMs = 1500;
    const err = await read(node, 0, 512).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockIOError);
    expect((err as BlockIOError).errno).toBe('EIO');
    expect((err as Error).message).toBe(
      `curl: reading bytes 0-511 of '${url}': Operation timed out after 1 s`,
    );
  });

  it('retries failed requests, then gives up with the last error', async () => {
    const node = await open({ retries: 2, readahead: 0 });
    server.misbehave.failTimes = 2;
    expectImage(await read(node, 0, 512), 0);
    expect(gets().map((r) => r.status)).toEqual([503, 503, 206]);
    server.misbehave.failTimes = 3;
    await expect(read(node, 64 * KiB, 512)).rejects.toThrow('The requested URL returned error: 503');
    // A failed chunk leaves no trace: the next read asks again.
    expectImage(await read(node, 64 * KiB, 512), 64 * KiB);
  });

  it('an image replaced on the server fails the next uncached read, naming what changed', async () => {
    const node = await open({ readahead: 0 });
    await read(node, 0, 512);
    server.changeVersion('/img');
    expectImage(await read(node, 0, 512), 0); // cached: no request, no check
    await expect(read(node, 64 * KiB, 512)).rejects.toThrow(
      /The image changed on the server while open \(ETag was "v1-1048576", now "v2-1048576"\)/,
    );
  });

  it('a Content-Encoding appearing mid-session fails the read', async () => {
    const node = await open();
    server.misbehave.contentEncoding = true;
    await expect(read(node, 0, 512)).rejects.toThrow(/Content-Encoding 'gzip'/);
  });
});

describe('http: adaptive read-ahead', () => {
  it('a sequential stream soon makes few, large requests, within the readahead cap', async () => {
    const node = await open({ readahead: 256 * KiB });
    for (let offset = 0; offset < MiB; offset += 4 * KiB) {
      expectImage(await read(node, offset, 4 * KiB), offset);
    }
    const sizes = gets().map((r) => r.bytes);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(MiB); // nothing fetched twice, nothing beyond the end
    expect(sizes.length).toBeLessThanOrEqual(8);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * KiB + 256 * KiB);
    // The window doubles: the requests grow.
    expect(sizes[1]).toBeLessThan(sizes[3]!);
  });

  it('random reads fetch only their own chunks, and reset a stream', async () => {
    const node = await open({ readahead: 256 * KiB });
    for (const c of [9, 2, 14, 5, 11, 0]) await read(node, c * 64 * KiB + 100, 4 * KiB);
    expect(gets().map((r) => r.bytes)).toEqual(Array(6).fill(64 * KiB));
  });

  it('readahead=0 turns it off', async () => {
    const node = await open({ readahead: 0 });
    for (let offset = 0; offset < 256 * KiB; offset += 4 * KiB) await read(node, offset, 4 * KiB);
    expect(gets()).toHaveLength(4);
  });
});

// The conformance suites over the same rows the browser run uses.
protocolSuite({ describe, it }, [httpRow(() => server.origin)]);
formatSuite({ describe, it }, [rawOverHttpRow(() => server.origin)]);
