/**
 * layout=chunked (the format is described in manifest.ts): the manifest is fetched once at open,
 * then each present chunk is one GET of its own file, zstd chunks decoded with fzstd. Absent
 * chunks are zeros without a request. A chunk file of the wrong length fails the read.
 */
import { decompress } from 'fzstd';
import { HttpFailure } from './errors.ts';
import { fetchWithRetry, type RequestPolicy } from './fetch-retry.ts';
import { chunkPath, parseManifest, type Manifest } from './manifest.ts';
import type { ChunkSource } from './source.ts';

export async function openChunked(url: string, policy: RequestPolicy): Promise<ChunkSource> {
  const manifest = await fetchWithRetry(url, {}, policy, async (res) => {
    const text = await res.text();
    try {
      return parseManifest(text);
    } catch (err) {
      throw new HttpFailure(`Invalid chunked-layout manifest: ${(err as Error).message}`, false);
    }
  });
  return new ChunkedSource(url, manifest, policy);
}

class ChunkedSource implements ChunkSource {
  readonly size: number;
  readonly chunkSize: number;
  // Each chunk is its own file: a run of chunks is still one request per chunk.
  readonly maxRun = 1;

  constructor(
    private readonly url: string,
    private readonly manifest: Manifest,
    private readonly policy: RequestPolicy,
  ) {
    this.size = manifest.size;
    this.chunkSize = manifest.chunkSize;
  }

  absent(index: number): boolean {
    return !this.manifest.chunks.has(index);
  }

  async fetch(first: number): Promise<Uint8Array[]> {
    const encoding = this.manifest.chunks.get(first)!;
    const expected = Math.min(this.chunkSize, this.size - first * this.chunkSize);
    const chunkUrl = new URL(chunkPath(first, encoding), this.url).href;
    const data = await fetchWithRetry(chunkUrl, {}, this.policy, async (res) => {
      const body = new Uint8Array(await res.arrayBuffer());
      return encoding === 'zstd' ? decodeZstd(body, chunkUrl) : body;
    });
    if (data.length !== expected) {
      throw new HttpFailure(
        `chunk file '${chunkUrl}' holds ${data.length} bytes, expected ${expected}`,
        false,
      );
    }
    return [data];
  }
}

function decodeZstd(body: Uint8Array, url: string): Uint8Array {
  try {
    return decompress(body);
  } catch (err) {
    throw new HttpFailure(`chunk file '${url}' is not valid zstd: ${(err as Error).message}`, false);
  }
}
