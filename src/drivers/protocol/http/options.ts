/**
 * Options of the `http` and `https` drivers: QAPI BlockdevOptionsCurlHttp / BlockdevOptionsCurlHttps
 * (qapi/block-core.json, QEMU 7.2) as far as fetch can honour them, plus blockgraph's own.
 *
 * From QEMU: url, readahead, timeout, cookie; https adds sslverify. Left out because fetch cannot
 * do them: username / password-secret / proxy-* / cookie-secret (no secret objects reach drivers,
 * and a page cannot choose its proxy). `sslverify` is accepted, but only `on`: fetch always
 * verifies certificates.
 *
 * Ours: layout (byte ranges of one file, or the chunked layout of `blockgraph publish`),
 * chunk-size, cache-size, max-requests, retries.
 */
import type { OptionsSchema } from '../../../config/schema.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** CURL_BLOCK_OPT_*_DEFAULT and CURL_TIMEOUT_MAX in block/curl.c. */
export const QEMU_READAHEAD_DEFAULT = 256 * KiB;
export const QEMU_TIMEOUT_DEFAULT = 5;
export const QEMU_TIMEOUT_MAX = 10_000;

/** chunk-size's default with layout=ranges (no schema default: layout=chunked refuses the option). */
export const DEFAULT_CHUNK_SIZE = 64 * KiB;

export const HTTP_OPTIONS = {
  url: { type: 'str', required: true, help: 'URL of the image (or of its manifest with layout=chunked)' },
  readahead: {
    type: 'size',
    default: QEMU_READAHEAD_DEFAULT,
    help: 'largest read-ahead window for sequential reads (a multiple of 512; 0 disables read-ahead)',
  },
  timeout: {
    type: 'int',
    default: QEMU_TIMEOUT_DEFAULT,
    help: 'seconds one HTTP request may take, 0 for no limit (at most 10000)',
  },
  cookie: { type: 'str', help: 'cookie(s) sent with each request (Node only: browsers forbid the header)' },
  layout: {
    type: 'enum',
    values: ['ranges', 'chunked'],
    default: 'ranges',
    help: "'ranges': byte ranges of one file; 'chunked': a manifest plus chunk files (blockgraph publish)",
  },
  'chunk-size': {
    type: 'size',
    min: 512,
    help: 'granularity of requests and of the cache with layout=ranges, default 64 KiB (the manifest sets it with layout=chunked)',
  },
  'cache-size': { type: 'size', default: 16 * MiB, help: 'bytes of fetched chunks kept (LRU)' },
  'max-requests': { type: 'int', default: 8, min: 1, max: 64, help: 'HTTP requests in flight at most' },
  retries: {
    type: 'int',
    default: 3,
    min: 0,
    max: 20,
    help: 'times a failed request (network error, timeout, 5xx, 429) is retried, with doubling delays',
  },
} as const satisfies OptionsSchema;

export const HTTPS_OPTIONS = {
  ...HTTP_OPTIONS,
  sslverify: {
    type: 'bool',
    default: true,
    help: "verify the server's certificate (only 'on': fetch always verifies)",
  },
} as const satisfies OptionsSchema;

/** The options a driver instance works with, typed. */
export interface HttpSettings {
  readonly url: string;
  readonly readahead: number;
  /** Milliseconds; 0 for none. */
  readonly timeoutMs: number;
  readonly cookie?: string;
  readonly layout: 'ranges' | 'chunked';
  /** With layout=ranges; the manifest sets it with layout=chunked. */
  readonly chunkSize: number;
  readonly cacheSize: number;
  readonly maxRequests: number;
  readonly retries: number;
}
