/**
 * A real HTTP server for the http driver's tests (vitest in Node, Playwright e2e, the benchmark):
 * node:http on 127.0.0.1, an ephemeral port unless one is given. Serves byte ranges of files,
 * in-memory bytes, directories (the chunked layout) and virtual zero images of any size
 * (`/zero/<size>`), with the CORS headers a cross-origin page needs, a log of every request,
 * and misbehaviours switched on by the test: no ranges, a Content-Encoding, a fixed status,
 * slow answers, N failures before success, a changed ETag, no CORS, unexposed headers.
 */
import { open, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface Misbehaviour {
  /** Ignore Range headers: 200 with the whole body, no Accept-Ranges. */
  noRanges?: boolean;
  /** gzip every ranged body and say so in Content-Encoding. */
  contentEncoding?: boolean;
  /** Answer every request with this status and no body. */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Answer the next N requests with 503. */
  failTimes?: number;
  /** Leave out Access-Control-Allow-Origin (a browser then refuses the response). */
  noCors?: boolean;
  /** Leave out Access-Control-Expose-Headers (a page then cannot read Content-Range or ETag). */
  noExpose?: boolean;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  /** The Range header, if any. */
  readonly range?: string;
  readonly status: number;
  /** Body bytes sent. */
  readonly bytes: number;
}

/** What a path serves: a length and a way to read any part of it. */
interface Resource {
  readonly size: number;
  read(start: number, end: number): Promise<Uint8Array>;
  /** Bumped by changeVersion(): the ETag and Last-Modified change with it. */
  version: number;
}

const EXPOSED = 'Content-Range, Content-Length, Content-Encoding, Accept-Ranges, ETag, Last-Modified';

export class TestHttpServer {
  readonly log: LoggedRequest[] = [];
  misbehave: Misbehaviour = {};
  /** The most GET/HEAD requests being answered at once since the last reset(). */
  peakInFlight = 0;
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly resources = new Map<string, Resource>();
  private readonly dirs = new Map<string, string>();

  private constructor(
    private readonly server: Server,
    readonly origin: string,
  ) {}

  /** Starts a server on 127.0.0.1 (port 0: any free port). */
  static async start(port = 0): Promise<TestHttpServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const self = new TestHttpServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void self.handle(req, res));
    return self;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Serves `data` at `path`; returns its URL. */
  serveBytes(path: string, data: Uint8Array): string {
    this.resources.set(path, { size: data.length, read: async (s, e) => data.subarray(s, e), version: 1 });
    return this.origin + path;
  }

  /** Serves the file `file` (read per request, so sparse files cost nothing) at `path`. */
  async serveFile(path: string, file: string): Promise<string> {
    this.resources.set(path, await fileResource(file));
    return this.origin + path;
  }

  /** Serves the files under `dir` at `prefix` + their relative path; returns the base URL. */
  serveDir(prefix: string, dir: string): string {
    this.dirs.set(prefix.endsWith('/') ? prefix : `${prefix}/`, dir);
    return this.origin + prefix;
  }

  /** The URL of a zero-filled image of `size` bytes (served without storing anything). */
  zeroUrl(size: number): string {
    return `${this.origin}/zero/${size}`;
  }

  /** Makes `path` look replaced on the server: new ETag and Last-Modified, same bytes. */
  changeVersion(path: string): void {
    this.resources.get(path)!.version++;
  }

  /**
   * Waits until no request is being answered (a client that gave up leaves the server still
   * answering), then forgets the log, the peak and every misbehaviour.
   */
  async reset(): Promise<void> {
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.log.length = 0;
    this.peakInFlight = 0;
    this.misbehave = {};
  }

  /** Requests logged for `path` (GETs only unless `all`). */
  requests(path: string, all = false): LoggedRequest[] {
    return this.log.filter((r) => r.path === path && (all || r.method === 'GET'));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', this.origin).pathname);
    const m = this.misbehave;
    let bytes = 0;
    const finish = (status: number, body?: Uint8Array) => {
      res.statusCode = status;
      if (body) {
        res.setHeader('Content-Length', body.length);
        bytes = body.length;
      }
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    this.peakInFlight = Math.max(this.peakInFlight, ++this.inFlight);
    res.on('close', () => {
      this.inFlight--;
      this.log.push({
        method: req.method ?? '',
        path,
        range: req.headers.range,
        status: res.statusCode,
        bytes,
      });
      if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    });
    if (!m.noCors) res.setHeader('Access-Control-Allow-Origin', '*');
    if (!m.noCors && !m.noExpose) res.setHeader('Access-Control-Expose-Headers', EXPOSED);
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD');
      // v86's URL disks send X-Accept-Encoding: identity with every Range request.
      res.setHeader('Access-Control-Allow-Headers', 'Range, X-Accept-Encoding');
      return finish(204);
    }
    if (m.delayMs) await new Promise((resolve) => setTimeout(resolve, m.delayMs));
    if (m.failTimes) {
      m.failTimes--;
      return finish(503);
    }
    if (m.status) return finish(m.status);
    const resource = this.resource(path) ?? (await this.dirResource(path));
    if (!resource) return finish(404);
    res.setHeader('ETag', `"v${resource.version}-${resource.size}"`);
    res.setHeader('Last-Modified', new Date(Date.UTC(2026, 0, resource.version)).toUTCString());
    if (m.noRanges) return this.sendWhole(resource, req, res, (n) => (bytes = n));
    res.setHeader('Accept-Ranges', 'bytes');
    const range = parseRange(req.headers.range, resource.size);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${resource.size}`);
      return finish(416);
    }
    if (!range) return this.sendWhole(resource, req, res, (n) => (bytes = n));
    let body = await resource.read(range.start, range.end);
    if (m.contentEncoding) {
      body = gzipSync(body);
      res.setHeader('Content-Encoding', 'gzip');
    }
    res.setHeader('Content-Range', `bytes ${range.start}-${range.end - 1}/${resource.size}`);
    finish(206, body);
  }

  /** 200 with the whole body, streamed in pieces so a huge resource does not sit in memory. */
  private async sendWhole(r: Resource, req: IncomingMessage, res: ServerResponse, sent: (n: number) => void) {
    res.statusCode = 200;
    res.setHeader('Content-Length', r.size);
    if (req.method === 'HEAD') return void res.end();
    let n = 0;
    for (let at = 0; at < r.size && !res.destroyed; at += 1 << 20) {
      const piece = await r.read(at, Math.min(r.size, at + (1 << 20)));
      n += piece.length;
      if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve));
    }
    sent(n);
    res.end();
  }

  private resource(path: string): Resource | undefined {
    const zero = /^\/zero\/(\d+)$/.exec(path);
    if (zero) {
      const size = Number(zero[1]);
      return { size, read: async (s, e) => new Uint8Array(e - s), version: 1 };
    }
    return this.resources.get(path);
  }

  /** A file under a served directory, as a resource (streamed, never whole in memory). */
  private async dirResource(path: string): Promise<Resource | undefined> {
    for (const [prefix, dir] of this.dirs) {
      if (!path.startsWith(prefix)) continue;
      const file = join(dir, normalize(path.slice(prefix.length)).replace(/^(\.\.(\/|$))+/, ''));
      return fileResource(file).catch(() => undefined);
    }
    return undefined;
  }
}

/** A regular file as a resource, read per request. Rejects if `file` is not a regular file. */
async function fileResource(file: string): Promise<Resource> {
  const st = await stat(file);
  if (!st.isFile()) throw new Error(`${file} is not a regular file`);
  const read = async (start: number, end: number) => {
    const fh = await open(file, 'r');
    try {
      const buf = new Uint8Array(end - start);
      await fh.read(buf, 0, buf.length, start);
      return buf;
    } finally {
      await fh.close();
    }
  };
  return { size: st.size, read, version: 1 };
}

/** The single range of a `Range: bytes=...` header, end exclusive; undefined for none. */
function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
  }
  if (start >= size || end <= start) return 'unsatisfiable';
  return { start, end };
}
