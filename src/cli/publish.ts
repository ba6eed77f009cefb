/**
 * `blockgraph publish`: writes any image the CLI can open as the http driver's chunked layout
 * (src/drivers/protocol/http/manifest.ts), for static hosts that serve no byte ranges:
 *   publish [--object objectdef] [--image-opts] [-f fmt] [-U] [-c chunk-size] [-z] IMG DIR
 * DIR gets chunks/ with one file per chunk that holds data (all-zero chunks get none), then
 * manifest.json, written last so that no reader sees a manifest naming chunks not yet written.
 * What is published is the guest view, as `convert -O raw` would write it; `-f raw` publishes an
 * image file itself (a qcow2 to open as qcow2 over http, keeping its compression and backing).
 * `-z` stores chunks zstd-compressed where that makes them smaller. Chunk files a previous
 * publish left in DIR are not removed; the new manifest does not name them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockNode } from '../block/node.ts';
import { parseSize } from '../config/size.ts';
import { chunkPath, manifestJson, type ChunkEncoding } from '../drivers/protocol/http/manifest.ts';
import { BlockGraph } from '../graph/graph.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} publish [--object objectdef] [--image-opts] [-f fmt] [-U] [-c chunk-size] [-z] filename directory\n`;

const DEFAULT_CHUNK = 256 * 1024;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:Uc:z', [
      { name: 'chunk-size', hasArg: true, key: 'c' },
      { name: 'zstd', hasArg: false, key: 'z' },
    ]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    if (parsed.operands.length !== 2) throw new CliExit('Expecting an image file name and a directory', true);
    const [filename, dir] = parsed.operands as [string, string];
    const chunkSize = chunkSizeOf(parsed.values('c').at(-1));
    const compress = parsed.values('z').length > 0 ? await zstdCompressor() : undefined;
    const graph = new BlockGraph();
    const { node } = await orCouldNotOpen(filename, () =>
      openImage(graph, { ...parsed.image, filename, readOnly: true }),
    );
    try {
      const chunks = await writeChunks(node, dir, chunkSize, compress);
      await writeFile(join(dir, 'manifest.json'), manifestJson({ size: node.length(), chunkSize, chunks }));
      io.out(`Published ${chunks.size} of ${Math.ceil(node.length() / chunkSize)} chunks to ${dir}\n`);
    } finally {
      await graph.release(node);
    }
    return 0;
  });
}

/** `-c`: a size with qemu-img's suffixes, a multiple of 512 (the manifest requires it). */
function chunkSizeOf(arg: string | undefined): number {
  if (arg === undefined) return DEFAULT_CHUNK;
  const n = parseSize(arg, 'chunk size');
  if (n < 512 || n % 512 !== 0) throw new CliExit('Chunk size must be a non-zero multiple of 512');
  return n;
}

type Compressor = (data: Uint8Array) => Uint8Array;

async function zstdCompressor(): Promise<Compressor> {
  const { Zstd } = await import('@hpcc-js/wasm-zstd');
  const zstd = await Zstd.load();
  return (data) => zstd.compress(data);
}

/**
 * Writes every chunk of `node` holding a non-zero byte into DIR/chunks and returns their
 * encodings by index. Ranges block status reports as zeros are skipped without reading them,
 * so a sparse image publishes in time proportional to its data.
 */
async function writeChunks(
  node: BlockNode,
  dir: string,
  chunkSize: number,
  compress: Compressor | undefined,
): Promise<Map<number, ChunkEncoding>> {
  await mkdir(join(dir, 'chunks'), { recursive: true });
  const chunks = new Map<number, ChunkEncoding>();
  const size = node.length();
  const buf = new Uint8Array(chunkSize);
  for (let index = 0; index * chunkSize < size; index++) {
    const start = index * chunkSize;
    const data = buf.subarray(0, Math.min(chunkSize, size - start));
    if (await allZeroStatus(node, start, data.length)) continue;
    await node.read(start, data);
    if (data.every((b) => b === 0)) continue;
    const packed = compress?.(data);
    const encoding: ChunkEncoding = packed && packed.length < data.length ? 'zstd' : 'raw';
    await writeFile(join(dir, chunkPath(index, encoding)), encoding === 'zstd' ? packed! : data);
    chunks.set(index, encoding);
  }
  return chunks;
}

/** Whether block status says all of [offset, offset + bytes) reads as zeros. */
async function allZeroStatus(node: BlockNode, offset: number, bytes: number): Promise<boolean> {
  for (let at = offset; at < offset + bytes;) {
    const st = await node.blockStatus(at, offset + bytes - at);
    if (!st.zero) return false;
    at += st.bytes;
  }
  return true;
}
