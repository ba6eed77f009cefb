/**
 * Error texts of the http/https drivers. Where QEMU's curl driver (block/curl.c, QEMU 7.2) has
 * one, it is QEMU's, checked against qemu-img with qemu-block-extra's curl module:
 *   open failures       "CURL: Error opening file: <why>"
 *   HTTP status >= 400  "The requested URL returned error: 404" (curl's CURLOPT_FAILONERROR)
 *   no byte ranges      "Server does not support 'range' (byte ranges)."
 *   no size             "Server didn't report file size."
 * The rest (CORS, Content-Encoding, a file that changed, timeouts) are blockgraph's own: fetch
 * sees what curl never had to explain.
 */
import { genericError, ioError, type QmpError } from '../../../block/errors.ts';

/** Why one request failed; `retryable` failures are tried again (network, timeout, 5xx, 429). */
export class HttpFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'HttpFailure';
  }
}

export function statusFailure(status: number): HttpFailure {
  const retryable = status >= 500 || status === 429 || status === 408;
  return new HttpFailure(`The requested URL returned error: ${status}`, retryable);
}

export const NO_RANGES = "Server does not support 'range' (byte ranges).";

/** Cross-origin servers hide headers a ranged read needs unless they list them. */
const EXPOSE_HINT = 'a cross-origin server must list Content-Range and ETag in Access-Control-Expose-Headers';

export function noSizeFailure(): HttpFailure {
  return new HttpFailure(
    `Server didn't report file size. (no readable Content-Range on a range response: ${EXPOSE_HINT})`,
    false,
  );
}

/**
 * fetch rejected without a response. To a page a refused cross-origin request and a network
 * failure are the same TypeError, so across origins both are named; in Node the cause is known.
 */
export function networkFailure(url: string, err: unknown): HttpFailure {
  const cause = (err as { cause?: { message?: string; code?: string } }).cause;
  const detail = cause?.message ?? (err as Error).message;
  const here = (globalThis as { location?: { origin?: string } }).location?.origin;
  const crossOrigin = here !== undefined && new URL(url, here).origin !== here;
  const why = crossOrigin
    ? `network error, or the cross-origin request was refused (CORS): the two look the same to a page; ` +
      `the server must send Access-Control-Allow-Origin, and ${EXPOSE_HINT}`
    : 'network error';
  return new HttpFailure(`Failed to fetch '${url}': ${why} (${detail})`, true);
}

export function timeoutFailure(seconds: number): HttpFailure {
  return new HttpFailure(`Operation timed out after ${seconds} s`, true);
}

export function encodingFailure(encoding: string): HttpFailure {
  return new HttpFailure(
    `Server sent a byte range with Content-Encoding '${encoding}': ranges of an encoded body are ` +
      `meaningless; serve the image without compression`,
    false,
  );
}

export function changedFailure(what: string, before: string, now: string): HttpFailure {
  return new HttpFailure(
    `The image changed on the server while open (${what} was ${before}, now ${now})`,
    false,
  );
}

/** The open-time error: QEMU's "CURL: Error opening file: ..." (curl_open's `out:` label). */
export function openError(err: unknown): QmpError {
  return genericError(`CURL: Error opening file: ${(err as Error).message}`);
}

/** A failed read: EIO (as curl_co_preadv), naming the URL and range. */
export function readError(url: string, start: number, end: number, err: unknown): QmpError {
  return ioError('EIO', `curl: reading bytes ${start}-${end - 1} of '${url}': ${(err as Error).message}`);
}
