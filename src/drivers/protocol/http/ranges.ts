/**
 * layout=ranges: the image is one file read with HTTP Range requests, as QEMU's curl driver does.
 *
 * The size comes from a one-byte range request (`Range: bytes=0-0`) rather than QEMU's HEAD: its
 * answer proves range support (206) and carries the size (Content-Range), both readable across
 * origins once exposed, where a HEAD's Accept-Ranges never is. Every later response is checked
 * against the first: still 206, the asked-for range, no Content-Encoding, the same size, ETag and
 * Last-Modified — a file replaced on the server under an open image fails its reads.
 */
import { changedFailure, encodingFailure, HttpFailure, NO_RANGES, noSizeFailure } from './errors.ts';
import { fetchWithRetry, type RequestPolicy } from './fetch-retry.ts';
import { splitChunks, type ChunkSource } from './source.ts';

/** Identity of the file's version, from the first response. */
interface Validators {
  readonly size: number;
  readonly etag: string | null;
  readonly lastModified: string | null;
}

/** Largest single request: bounds the memory one read-ahead can take. */
const MAX_REQUEST = 16 << 20;

/** Opens `url`: probes its size and range support; throws an HttpFailure otherwise. */
export async function openRanges(
  url: string,
  chunkSize: number,
  policy: RequestPolicy,
): Promise<ChunkSource> {
  const first = await fetchWithRetry(url, { headers: { Range: 'bytes=0-0' } }, policy, async (res) => {
    const v = validators(res);
    await res.arrayBuffer();
    return v;
  });
  return new RangeSource(url, chunkSize, policy, first);
}

/** Reads the probe's answer: 206 with a size, or 416 for an empty file. */
function validators(res: Response): Validators {
  if (res.status === 200) throw new HttpFailure(NO_RANGES, false);
  checkEncoding(res);
  const range = parseContentRange(res.headers.get('Content-Range'));
  if (!range) throw noSizeFailure();
  return { size: range.total, etag: res.headers.get('ETag'), lastModified: res.headers.get('Last-Modified') };
}

function checkEncoding(res: Response): void {
  const encoding = res.headers.get('Content-Encoding');
  if (encoding && encoding.toLowerCase() !== 'identity') throw encodingFailure(encoding);
}

/** `bytes A-B/T`, or `bytes *` + `/T` as a 416 carries it; the total T must be known. */
function parseContentRange(
  header: string | null,
): { start?: number; end?: number; total: number } | undefined {
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+)$/i.exec(header?.trim() ?? '');
  if (!m) return undefined;
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    end: m[2] === undefined ? undefined : Number(m[2]),
    total: Number(m[3]),
  };
}

class RangeSource implements ChunkSource {
  readonly size: number;
  readonly maxRun: number;

  constructor(
    private readonly url: string,
    readonly chunkSize: number,
    private readonly policy: RequestPolicy,
    private readonly version: Validators,
  ) {
    this.size = version.size;
    this.maxRun = Math.max(1, Math.floor(MAX_REQUEST / chunkSize));
  }

  absent(): boolean {
    return false;
  }

  async fetch(first: number, count: number): Promise<Uint8Array[]> {
    const start = first * this.chunkSize;
    const end = Math.min(this.size, (first + count) * this.chunkSize);
    const data = await fetchWithRetry(
      this.url,
      { headers: { Range: `bytes=${start}-${end - 1}` } },
      this.policy,
      async (res) => {
        this.check(res, start, end);
        const body = new Uint8Array(await res.arrayBuffer());
        if (body.length !== end - start) {
          throw new HttpFailure(`Server sent ${body.length} bytes for a ${end - start}-byte range`, true);
        }
        return body;
      },
    );
    return splitChunks(data, this.chunkSize);
  }

  /** The response is the range asked for, of the file version first seen. */
  private check(res: Response, start: number, end: number): void {
    if (res.status !== 206)
      throw new HttpFailure(`${NO_RANGES} (status ${res.status} to a range request)`, false);
    checkEncoding(res);
    const range = parseContentRange(res.headers.get('Content-Range'));
    if (!range) throw noSizeFailure();
    if (range.total !== this.version.size)
      throw changedFailure('its size', String(this.version.size), String(range.total));
    const same = (what: string, before: string | null, now: string | null) => {
      if (before !== null && now !== null && before !== now) throw changedFailure(what, before, now);
    };
    same('ETag', this.version.etag, res.headers.get('ETag'));
    same('Last-Modified', this.version.lastModified, res.headers.get('Last-Modified'));
    if (range.start !== start || range.end !== end - 1) {
      throw new HttpFailure(
        `Server sent bytes ${range.start}-${range.end} for bytes ${start}-${end - 1}`,
        false,
      );
    }
  }
}
