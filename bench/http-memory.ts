/**
 * Memory growth of the blockgraph worker while a page reads a 5 GiB image end to end, in
 * Chromium, through the worker client (1 MiB drive-handle reads, one at a time):
 *   - over `http`: a sparse 5 GiB file with 1 MiB of data every 256 MiB, from the test HTTP
 *     server (cross-origin to the page), with the driver's default cache (`cache-size` 16 MiB);
 *   - over `blob`: a 5 GiB File the page builds from 5120 references to one 1 MiB buffer.
 * The worker's memory is its JS heap plus its ArrayBuffer backing stores, from the DevTools
 * protocol (Runtime.getHeapUsage on the worker's target), live: each sample follows full GCs
 * (HeapProfiler.collectGarbage), every 250 ms while reading, and once at the end (retained); the
 * median and the largest sample are printed. Buffers already dropped but not yet collected are
 * not counted: V8 collects them on its own schedule (a run without forced GCs peaked 60-80 MiB
 * above the start, all of it garbage a GC reclaims). The target: growth within the
 * configured caches plus a small constant (SLACK below), judged on the peak. Prints both.
 * Not a test: a Playwright-driven script on its own dev server.
 *
 *   npx tsx bench/http-memory.ts [GiB=5] [images=http,blob]
 *
 * BENCH_PORT (default 5292) is the dev server's port.
 */
import { mkdtempSync, openSync, closeSync, ftruncateSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CDPSession, Page } from '@playwright/test';
import { TestHttpServer } from '../test/support/http-server.ts';
import { openBenchPage } from './browser.ts';

const PORT = Number(process.env.BENCH_PORT ?? 5292);
const MiB = 1 << 20;
/** The http driver's default `cache-size` (src/drivers/protocol/http/options.ts). */
const HTTP_CACHE = 16 * MiB;
/** What may come on top of the caches: a few 1 MiB request buffers, read-ahead, code. */
const SLACK = 8 * MiB;
/** One data region of 1 MiB every STRIDE bytes of the sparse image. */
const STRIDE = 256 * MiB;

/** The worker's memory as the DevTools protocol reports it, through the page's session. */
class WorkerHeap {
  private nextId = 1;
  private readonly waiting = new Map<number, (result: Record<string, number>) => void>();

  private constructor(
    private readonly cdp: CDPSession,
    private readonly sessionId: string,
  ) {
    cdp.on('Target.receivedMessageFromTarget', (e) => {
      const m = JSON.parse(e.message) as { id: number; result: Record<string, number> };
      this.waiting.get(m.id)?.(m.result);
    });
  }

  /** Attaches to the page's (only) dedicated worker, the blockgraph worker. */
  static async attach(page: Page): Promise<WorkerHeap> {
    const cdp = await page.context().newCDPSession(page);
    const attached = new Promise<string>((resolve) =>
      cdp.on('Target.attachedToTarget', (e) => {
        if (e.targetInfo.type === 'worker') resolve(e.sessionId);
      }),
    );
    // Unflattened: Playwright's CDPSession cannot address a child session directly.
    await cdp.send('Target.setAutoAttach', {
      autoAttach: true,
      waitForDebuggerOnStart: false,
      flatten: false,
    });
    return new WorkerHeap(cdp, await attached);
  }

  /** Live JS heap plus ArrayBuffer backing stores, in bytes (after a full GC). */
  async live(): Promise<number> {
    // Twice: V8 frees dead ArrayBuffers' memory on a background sweeper after a GC, and the next
    // GC waits for that sweep; after one GC the count can still hold them.
    await this.send('HeapProfiler.collectGarbage');
    await this.send('HeapProfiler.collectGarbage');
    const usage = await this.send('Runtime.getHeapUsage');
    return usage.usedSize! + (usage.backingStorageSize ?? 0);
  }

  private send(method: string): Promise<Record<string, number>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      void this.cdp.send('Target.sendMessageToTarget', {
        sessionId: this.sessionId,
        message: JSON.stringify({ id, method }),
      });
    });
  }
}

/** A sparse file of `size` bytes holding 1 MiB of 0xa5 at every multiple of STRIDE. */
function sparseImage(path: string, size: number): number {
  const fd = openSync(path, 'w');
  let regions = 0;
  try {
    ftruncateSync(fd, size);
    for (let at = 0; at < size; at += STRIDE, regions++) writeSync(fd, Buffer.alloc(MiB, 0xa5), 0, MiB, at);
  } finally {
    closeSync(fd);
  }
  return regions;
}

interface Run {
  readonly name: string;
  /** Bytes of caches the node is configured with. */
  readonly cache: number;
  readonly before: number;
  /** The median and the largest of the samples taken while reading. */
  readonly median: number;
  readonly peak: number;
  readonly retained: number;
  readonly seconds: number;
  readonly dataPieces: number;
}

/**
 * In the page: opens `node` (blockdev-add options, `blob` set to a File of `size` bytes built from
 * one 1 MiB buffer, if given), reads it end to end in 1 MiB pieces; returns how many pieces held
 * data and how long it took.
 */
function readEndToEnd(page: Page, node: Record<string, unknown>, size: number, blob: boolean) {
  return page.evaluate(
    async ([node, size, blob]) => {
      const bg = window.blockgraph;
      const MiB = 1 << 20;
      if (blob) {
        const piece = new Blob([new Uint8Array(MiB).fill(0x5a)]);
        await bg.registerBlob(new File(Array<Blob>(size / MiB).fill(piece), 'big.img'));
      }
      const drive = await bg.addDrive({ id: 'big', node, readOnly: true });
      const start = performance.now();
      let dataPieces = 0;
      for (let at = 0; at < size; at += MiB) {
        const words = new Uint32Array((await drive.read(at, MiB)).buffer);
        if (words.some((w) => w !== 0)) dataPieces++;
      }
      const seconds = (performance.now() - start) / 1000;
      await drive.close();
      return { dataPieces, seconds };
    },
    [node, size, blob] as const,
  );
}

async function measure(
  name: string,
  cache: number,
  node: Record<string, unknown>,
  size: number,
  blob: boolean,
): Promise<Run> {
  const { page, close } = await openBenchPage(PORT);
  try {
    const heap = await WorkerHeap.attach(page);
    const before = await heap.live();
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await heap.live());
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const { dataPieces, seconds } = await readEndToEnd(page, node, size, blob);
    sampling = false;
    await sampler;
    samples.sort((a, b) => a - b);
    const [median, peak] = [samples[samples.length >> 1]!, samples.at(-1)!];
    return { name, cache, before, median, peak, retained: await heap.live(), seconds, dataPieces };
  } finally {
    await close();
  }
}

function print(runs: readonly Run[], size: number, expected: Record<string, number>): void {
  const m = (bytes: number) => (bytes / MiB).toFixed(1);
  console.log(
    `Chromium worker, ${size / 2 ** 30} GiB read end to end in 1 MiB pieces; MiB of live JS heap + ArrayBuffers:\n`,
  );
  console.log(
    'image   before  retained  growth median / peak  caches+slack  peak within    MB/s  data pieces',
  );
  for (const r of runs) {
    const limit = r.cache + SLACK;
    const ok = r.peak - r.before <= limit && r.dataPieces === expected[r.name];
    const growth = `${m(r.median - r.before)} / ${m(r.peak - r.before)}`;
    console.log(
      `${r.name.padEnd(6)}${m(r.before).padStart(8)}${m(r.retained).padStart(10)}${growth.padStart(22)}` +
        `${m(limit).padStart(14)}${(ok ? 'yes' : 'NO').padStart(13)}` +
        `${(size / 1e6 / r.seconds).toFixed(0).padStart(8)}${String(r.dataPieces).padStart(13)}`,
    );
  }
  console.log(
    `\ncaches: http cache-size ${HTTP_CACHE / MiB} MiB, blob none; slack ${SLACK / MiB} MiB. ` +
      '"data pieces": 1 MiB pieces read back non-zero (expected: ' +
      `http ${expected.http}, blob ${expected.blob}).`,
  );
}

async function main(): Promise<void> {
  const size = Number(process.argv[2] ?? 5) * 2 ** 30;
  const only = process.argv[3]?.split(',');
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-bench-mem-'));
  const server = await TestHttpServer.start();
  try {
    const regions = sparseImage(join(dir, 'big.img'), size);
    const url = await server.serveFile('/big.img', join(dir, 'big.img'));
    const images = [
      { name: 'http', cache: HTTP_CACHE, file: { driver: 'http', url }, blob: false },
      { name: 'blob', cache: 0, file: { driver: 'blob', name: 'big.img' }, blob: true },
    ];
    const runs: Run[] = [];
    for (const { name, cache, file, blob } of images.filter((i) => !only || only.includes(i.name))) {
      runs.push(await measure(name, cache, { driver: 'raw', 'read-only': true, file }, size, blob));
    }
    print(runs, size, { http: regions, blob: size / MiB });
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
