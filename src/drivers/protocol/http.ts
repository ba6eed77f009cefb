/**
 * http and https (QEMU block/curl.c): a read-only image fetched with HTTP, through fetch, so the
 * same code runs in Node and in a browser Worker. QEMU's curl driver reads byte ranges with a
 * fixed read-ahead; here the image is read in chunks (`chunk-size`) kept in an LRU cache
 * (`cache-size`), concurrent reads of a chunk share one request, at most `max-requests` are in
 * flight, each has QEMU's `timeout` and is retried `retries` times with doubling delays, and
 * sequential streams get an adaptive read-ahead window capped by `readahead` (http/*.ts).
 *
 * Two layouts: `ranges` (one file, Range requests: http/ranges.ts) and `chunked` (a manifest plus
 * chunk files for hosts without ranges, written by `blockgraph publish`: http/manifest.ts).
 * Legacy filenames `http://...` / `https://...` open these drivers with `url` (curl_parse_filename).
 */
import type { BlockDriver, BlockDriverOps, OpenContext } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import { withDefaults } from '../options.ts';
import { ChunkCache } from './http/cache.ts';
import { openChunked } from './http/chunked.ts';
import { openError, readError } from './http/errors.ts';
import type { RequestPolicy } from './http/fetch-retry.ts';
import { Limiter } from './http/limiter.ts';
import {
  DEFAULT_CHUNK_SIZE,
  HTTP_OPTIONS,
  HTTPS_OPTIONS,
  QEMU_TIMEOUT_MAX,
  type HttpSettings,
} from './http/options.ts';
import { openRanges } from './http/ranges.ts';
import { ReadHeads } from './http/readahead.ts';
import { ChunkReader } from './http/reader.ts';
import type { ChunkSource } from './http/source.ts';

const CAPABILITIES = {
  writable: false,
  persistent: true,
  growable: false,
  discard: false,
  writeZeroes: false,
};

/**
 * The options of a node of driver `scheme`, checked in curl_open's order with its texts.
 * Throws a GenericError when they are refused.
 */
function settingsOf(scheme: 'http' | 'https', ctx: OpenContext): HttpSettings {
  const opts = withDefaults(scheme === 'https' ? HTTPS_OPTIONS : HTTP_OPTIONS, ctx.options);
  // bdrv_apply_auto_read_only: a writable open is an error unless auto-read-only allows falling back.
  if (!ctx.readOnly && opts['auto-read-only'] !== true)
    throw genericError('curl driver does not support writes');
  const readahead = opts.readahead as number;
  if (readahead % 512 !== 0) throw genericError(`HTTP_READAHEAD_SIZE ${readahead} is not a multiple of 512`);
  const timeout = opts.timeout as number;
  if (timeout < 0 || timeout > QEMU_TIMEOUT_MAX)
    throw genericError('timeout parameter is too large or negative');
  if (opts.sslverify === false) {
    throw genericError("sslverify=off is not supported: fetch always verifies the server's certificate");
  }
  const cookie = opts.cookie as string | undefined;
  if (cookie !== undefined && !canSendCookie()) {
    throw genericError(
      "The 'cookie' option cannot be used here: browsers do not let fetch send a Cookie header",
    );
  }
  const url = opts.url as string;
  if (!url.toLowerCase().startsWith(`${scheme}://`)) {
    throw genericError(
      `${scheme} curl driver cannot handle the URL '${url}' (does not start with '${scheme}://')`,
    );
  }
  if (opts.layout === 'chunked' && opts['chunk-size'] !== undefined) {
    throw genericError("'chunk-size' cannot be set with layout=chunked: the manifest sets it");
  }
  return {
    url,
    readahead,
    timeoutMs: timeout * 1000,
    cookie,
    layout: opts.layout as HttpSettings['layout'],
    chunkSize: (opts['chunk-size'] as number | undefined) ?? DEFAULT_CHUNK_SIZE,
    cacheSize: opts['cache-size'] as number,
    maxRequests: opts['max-requests'] as number,
    retries: opts.retries as number,
  };
}

/** Browsers silently drop forbidden headers from a Request; Node's fetch keeps them. */
function canSendCookie(): boolean {
  return new Request('http://localhost/', { headers: { Cookie: 'a=b' } }).headers.has('Cookie');
}

async function openHttp(scheme: 'http' | 'https', ctx: OpenContext): Promise<BlockDriverOps> {
  const s = settingsOf(scheme, ctx);
  const closing = new AbortController();
  const policy: RequestPolicy = {
    timeoutMs: s.timeoutMs,
    retries: s.retries,
    limiter: new Limiter(s.maxRequests),
    headers: s.cookie === undefined ? {} : { Cookie: s.cookie },
    closed: closing.signal,
  };
  let source: ChunkSource;
  try {
    source =
      s.layout === 'chunked'
        ? await openChunked(s.url, policy)
        : await openRanges(s.url, s.chunkSize, policy);
  } catch (err) {
    throw openError(err);
  }
  const cache = new ChunkCache(s.cacheSize);
  const cs = source.chunkSize;
  const reader = new ChunkReader(source, cache, new ReadHeads(cs, s.readahead, cs));
  return {
    length: () => source.size,
    filename: () => s.url,
    read: async (offset, dst) => {
      try {
        await reader.read(offset, dst);
      } catch (err) {
        throw readError(s.url, offset, offset + dst.length, err);
      }
    },
    // Absent chunks of the chunked layout are known zeros; byte ranges are all data.
    blockStatus: async (offset, bytes) => {
      const end = Math.min(offset + bytes, source.size);
      const zero = source.absent(Math.floor(offset / cs));
      let stop = (Math.floor(offset / cs) + 1) * cs;
      while (stop < end && source.absent(Math.floor(stop / cs)) === zero) stop += cs;
      const n = Math.max(1, Math.min(stop, end) - offset);
      return { bytes: Math.min(n, bytes), data: !zero, zero, allocated: true, depth: 0, offset };
    },
    close: async () => {
      closing.abort();
      cache.clear();
    },
  };
}

/** `http://...` is the whole URL (curl_parse_filename). */
function parseFilename(filename: string): Record<string, unknown> {
  return { url: filename };
}

export const httpDriver = {
  name: 'http',
  kind: 'protocol',
  options: HTTP_OPTIONS,
  capabilities: CAPABILITIES,
  protocols: ['http'],
  parseFilename,
  open: (ctx) => openHttp('http', ctx),
} as const satisfies BlockDriver;

export const httpsDriver = {
  name: 'https',
  kind: 'protocol',
  options: HTTPS_OPTIONS,
  capabilities: CAPABILITIES,
  protocols: ['https'],
  parseFilename,
  open: (ctx) => openHttp('https', ctx),
} as const satisfies BlockDriver;
