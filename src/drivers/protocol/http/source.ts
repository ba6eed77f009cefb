/** Where chunks come from: byte ranges of one file (ranges.ts) or chunk files (chunked.ts). */

export interface ChunkSource {
  /** The image's length in bytes. */
  readonly size: number;
  /** Every chunk is this long except the image's last, which ends at `size`. */
  readonly chunkSize: number;
  /** How many consecutive chunks one `fetch` may ask for. */
  readonly maxRun: number;
  /** The chunk is known to read as zeros without a request (an absent chunk file). */
  absent(index: number): boolean;
  /**
   * Fetches chunks first .. first+count-1, none of them absent. Resolves to one array per chunk,
   * each `chunkSize` bytes (the last chunk of the image shorter); rejects with an HttpFailure.
   */
  fetch(first: number, count: number): Promise<Uint8Array[]>;
}

/** Splits `data` (consecutive chunks) into one copy per chunk, so the cache frees them one by one. */
export function splitChunks(data: Uint8Array, chunkSize: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += chunkSize) out.push(data.slice(at, at + chunkSize));
  return out;
}
