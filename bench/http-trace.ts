/**
 * HTTP reads of the test guest's boot: the requests and bytes blockgraph's http driver needs for
 * a REAL boot trace, against v86's own Range-request disk booting the same guest. Targets
 * (issue 5): at most 0.5x v86's request count, at most 2x the bytes the trace touched.
 *
 * The trace (bench/traces/guest-boot.json) is every read and write v86 made of the guest's disk
 * in one boot to `BLOCKGRAPH-GUEST-DONE` (check mode), in order, recorded in Node with
 * `blockgraph boot`'s machinery (v86-node.ts, V86Disk over a BlockBackend that logs each request).
 * Our side replays it in Node through `-drive file=URL,format=raw,snapshot=on` (writes go to the
 * temporary overlay, as v86 keeps a URL disk's writes in memory), one request at a time, checking
 * every read against the image with the writes applied. v86's side boots the guest in Chromium
 * with `hda: { url, async: true, size }` (v86 reads local files, not URLs, when run in Node),
 * through e2e/fixtures/boot.ts. Both count the GET requests and body bytes the test HTTP server
 * answered for the image.
 *
 *   npx tsx bench/http-trace.ts            # replay, and boot v86 for its side
 *   npx tsx bench/http-trace.ts --record   # boot the guest in Node, rewrite the trace
 *
 * Needs guest/out/guest.raw (npm run guest). BENCH_PORT (default 5294) is the dev server's port.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BlockBackend } from '../src/block/backend.ts';
import { driveToConfig, parseDrive } from '../src/config/drive.ts';
import { V86Disk, type DiskBackend } from '../src/frontends/v86-disk.ts';
import { startNodeMachine } from '../src/frontends/v86-node.ts';
import { openDrive } from '../src/graph/drive.ts';
import { BlockGraph } from '../src/graph/graph.ts';
import { TestHttpServer } from '../test/support/http-server.ts';
import type { BootReport, BootRequest } from '../e2e/fixtures/boot.ts';
import { fsPath, openBenchPage } from './browser.ts';

const PORT = Number(process.env.BENCH_PORT ?? 5294);
const IMAGE = fileURLToPath(new URL('../guest/out/guest.raw', import.meta.url));
const TRACE = fileURLToPath(new URL('./traces/guest-boot.json', import.meta.url));
const BOOT_FIXTURE = fsPath(new URL('../e2e/fixtures/boot.ts', import.meta.url));
const DONE = '^BLOCKGRAPH-GUEST-DONE ';
const BOOT_TIMEOUT_MS = 180_000;
const KiB = 1024;
const MiB = 1024 * KiB;

/** One disk request: read or write, byte offset, byte length. */
type Op = readonly ['r' | 'w', number, number];

interface Trace {
  readonly about: string;
  /** The image the trace was recorded on. */
  readonly image: { readonly bytes: number; readonly sha256: string };
  readonly ops: readonly Op[];
}

interface Counts {
  readonly requests: number;
  readonly bytes: number;
}

function imageFacts(image: Uint8Array) {
  return { bytes: image.length, sha256: createHash('sha256').update(image).digest('hex') };
}

/** A DiskBackend that appends each read and write to `ops` before passing it on. */
function logging(backend: BlockBackend, ops: Op[]): DiskBackend {
  return {
    length: () => backend.length(),
    read: (offset, dst) => {
      ops.push(['r', offset, dst.length]);
      return backend.read(offset, dst);
    },
    write: (offset, src) => {
      ops.push(['w', offset, src.length]);
      return backend.write(offset, src);
    },
    flush: () => backend.flush(),
  };
}

/** Boots the guest in Node on the image (snapshot=on: the image stays as it is); returns the trace. */
async function record(): Promise<Trace> {
  const graph = new BlockGraph();
  const backend = await openDrive(graph, driveToConfig(parseDrive(`file=${IMAGE},format=raw,snapshot=on`)));
  const ops: Op[] = [];
  let line = '';
  let doneLine: string | undefined;
  let doneAt = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const machine = await startNodeMachine({
    memorySize: 64 * MiB,
    hda: new V86Disk(logging(backend, ops)),
    onSerialByte: (b) => {
      if (b !== 0x0a) {
        line += String.fromCharCode(b);
        return;
      }
      if (new RegExp(DONE).test(line)) {
        doneLine = line.trim();
        doneAt = ops.length;
        done();
      }
      line = '';
    },
  });
  const timeout = setTimeout(() => done(), BOOT_TIMEOUT_MS);
  await finished;
  clearTimeout(timeout);
  await machine.destroy();
  await backend.close();
  if (!doneLine) throw new Error(`the guest did not reach ${DONE} in time`);
  return {
    about: `v86 disk requests of one test-guest boot to "${doneLine}", recorded by bench/http-trace.ts --record`,
    image: imageFacts(readFileSync(IMAGE)),
    // What v86 asked for until the line, as the v86 side counts until it.
    ops: ops.slice(0, doneAt),
  };
}

/** One op per line: small, and diffable when re-recorded. */
function saveTrace(trace: Trace): void {
  const ops = trace.ops.map((op) => `    ${JSON.stringify(op).replaceAll(',', ', ')}`).join(',\n');
  const head = JSON.stringify({ about: trace.about, image: trace.image }, null, 2).slice(0, -2);
  writeFileSync(TRACE, `${head},\n  "ops": [\n${ops}\n  ]\n}\n`);
}

/** Bytes covered by the union of the trace's reads. */
function touched(ops: readonly Op[]): number {
  const reads = ops.filter((op) => op[0] === 'r').sort((a, b) => a[1] - b[1]);
  let total = 0;
  let end = 0;
  for (const [, offset, len] of reads) {
    total += Math.max(0, offset + len - Math.max(offset, end));
    end = Math.max(end, offset + len);
  }
  return total;
}

/**
 * Replays `ops` through a snapshot=on drive over the image at `url` with http `options`, each
 * read checked against `image` with the replayed writes applied; returns the server's counts.
 */
async function replay(
  server: TestHttpServer,
  url: string,
  image: Uint8Array,
  ops: readonly Op[],
  options: string,
) {
  await server.reset();
  const graph = new BlockGraph();
  const spec = `file.driver=http,file.url=${url}${options},format=raw,snapshot=on`;
  const backend = await openDrive(graph, driveToConfig(parseDrive(spec)));
  const model = image.slice();
  try {
    for (const [kind, offset, len] of ops) {
      const buf = new Uint8Array(len);
      if (kind === 'w') {
        buf.fill(offset & 0xff);
        model.set(buf, offset);
        await backend.write(offset, buf);
      } else {
        await backend.read(offset, buf);
        if (Buffer.compare(buf, model.subarray(offset, offset + len)) !== 0)
          throw new Error(`replay read wrong data at ${offset}`);
      }
    }
  } finally {
    await backend.close();
  }
  return count(server);
}

/** GET requests for the image and their body bytes (v86 sends CORS preflights too: not counted). */
function count(server: TestHttpServer): Counts {
  const gets = server.requests('/guest.raw');
  return { requests: gets.length, bytes: gets.reduce((n, r) => n + r.bytes, 0) };
}

/** Boots the guest in Chromium on v86's own URL disk; returns the server's counts and the last line. */
async function bootV86(server: TestHttpServer, url: string, size: number) {
  await server.reset();
  const { page, close } = await openBenchPage(PORT);
  try {
    const req: BootRequest = { hda: { v86Url: url, size }, until: DONE, timeoutMs: BOOT_TIMEOUT_MS };
    const report: BootReport = await page.evaluate(
      async ([fixture, req]) =>
        ((await import(fixture)) as typeof import('../e2e/fixtures/boot.ts')).boot(req),
      [BOOT_FIXTURE, req] as const,
    );
    return { ...count(server), done: report.lines.at(-1)! };
  } finally {
    await close();
  }
}

function print(trace: Trace, v86: Counts & { done: string }, ours: [string, Counts][]): void {
  const reads = trace.ops.filter((op) => op[0] === 'r');
  const touch = touched(trace.ops);
  const mb = (n: number) => (n / 1e6).toFixed(2);
  console.log(
    `REAL boot trace (${TRACE.slice(TRACE.lastIndexOf('bench/'))}): ${reads.length} reads of ` +
      `${mb(reads.reduce((n, op) => n + op[2], 0))} MB, ${trace.ops.length - reads.length} writes; ` +
      `${mb(touch)} MB touched by reads`,
  );
  console.log(`v86 in Chromium booted to: ${v86.done}\n`);
  console.log('disk                                   requests   MB fetched   req/v86   bytes/touched');
  const row = (name: string, r: Counts) =>
    console.log(
      `${name.padEnd(38)} ${String(r.requests).padStart(8)} ${mb(r.bytes).padStart(12)} ` +
        `${(r.requests / v86.requests).toFixed(2).padStart(9)} ${(r.bytes / touch).toFixed(2).padStart(15)}`,
    );
  row('v86 URL disk (real boot, Chromium)', v86);
  for (const [name, counts] of ours) row(name, counts);
  console.log(
    'targets: req/v86 <= 0.50, bytes/touched <= 2.00 (the http rows count their one-byte size probe)',
  );
}

async function main(): Promise<void> {
  const image = new Uint8Array(readFileSync(IMAGE));
  if (process.argv.includes('--record')) {
    const trace = await record();
    saveTrace(trace);
    console.log(`recorded ${trace.ops.length} requests to ${TRACE}`);
    return;
  }
  const trace = JSON.parse(readFileSync(TRACE, 'utf8')) as Trace;
  if (imageFacts(image).sha256 !== trace.image.sha256) {
    console.warn(
      'warning: guest/out/guest.raw is not the image the trace was recorded on (run with --record)',
    );
  }
  const server = await TestHttpServer.start();
  try {
    const url = await server.serveFile('/guest.raw', IMAGE);
    const v86 = await bootV86(server, url, image.length);
    const ours: [string, Counts][] = [];
    for (const [name, options] of [
      ['http, defaults', ''],
      ['http, readahead=1M', ',file.readahead=1M'],
      ['http, chunk-size=16k', ',file.chunk-size=16k'],
    ] as const) {
      ours.push([name, await replay(server, url, image, trace.ops, options)]);
    }
    print(trace, v86, ours);
  } finally {
    await server.close();
  }
}

await main();
