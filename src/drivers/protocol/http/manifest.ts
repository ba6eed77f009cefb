/**
 * The chunked layout, for static hosts that do not serve byte ranges (or serve everything
 * compressed). `blockgraph publish IMG DIR` writes it; `{driver: 'http', layout: 'chunked',
 * url: '.../manifest.json'}` reads it. In DIR:
 *
 *   manifest.json      {"blockgraph-chunked": 1, "size": 5368709120, "chunk-size": 262144,
 *                       "chunks": {"0": "raw", "7": "zstd", ...}}
 *   chunks/0           chunk 0, raw: exactly chunk-size bytes (the image's last chunk: up to size)
 *   chunks/7.zst       chunk 7, one or more zstd frames decoding to the same length
 *
 * `chunks` maps a chunk's index (decimal, no leading zeros) to its encoding; a chunk it does not
 * list reads as zeros and has no file, so an image costs only its data. Chunk files are found
 * relative to the manifest's URL. Chunk i covers bytes [i * chunk-size, (i+1) * chunk-size).
 */

export const MANIFEST_VERSION = 1;

export type ChunkEncoding = 'raw' | 'zstd';

export interface Manifest {
  readonly size: number;
  readonly chunkSize: number;
  readonly chunks: ReadonlyMap<number, ChunkEncoding>;
}

/** The chunk file's path relative to the manifest. */
export function chunkPath(index: number, encoding: ChunkEncoding): string {
  return `chunks/${index}${encoding === 'zstd' ? '.zst' : ''}`;
}

/** The manifest as JSON text (chunks in index order). */
export function manifestJson(m: Manifest): string {
  const chunks: Record<string, ChunkEncoding> = {};
  for (const index of [...m.chunks.keys()].sort((a, b) => a - b))
    chunks[String(index)] = m.chunks.get(index)!;
  return `${JSON.stringify({ 'blockgraph-chunked': MANIFEST_VERSION, size: m.size, 'chunk-size': m.chunkSize, chunks }, null, 1)}\n`;
}

/** Parses and checks a manifest; throws an Error saying what is wrong. */
export function parseManifest(text: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  const m = json as Record<string, unknown>;
  if (typeof m !== 'object' || m === null || m['blockgraph-chunked'] !== MANIFEST_VERSION) {
    throw new Error(`not a version ${MANIFEST_VERSION} chunked-layout manifest`);
  }
  const size = m.size;
  const chunkSize = m['chunk-size'];
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw new Error(`bad size ${String(size)}`);
  if (!Number.isSafeInteger(chunkSize) || (chunkSize as number) < 512 || (chunkSize as number) % 512) {
    throw new Error(`bad chunk-size ${String(chunkSize)} (a multiple of 512 is needed)`);
  }
  const count = Math.ceil((size as number) / (chunkSize as number));
  const chunks = new Map<number, ChunkEncoding>();
  if (typeof m.chunks !== 'object' || m.chunks === null) throw new Error('no chunks object');
  for (const [key, encoding] of Object.entries(m.chunks)) {
    const index = Number(key);
    if (String(index) !== key || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new Error(`bad chunk index '${key}' (the image has ${count} chunks)`);
    }
    if (encoding !== 'raw' && encoding !== 'zstd')
      throw new Error(`chunk ${key}: unknown encoding '${String(encoding)}'`);
    chunks.set(index, encoding);
  }
  return { size: size as number, chunkSize: chunkSize as number, chunks };
}
