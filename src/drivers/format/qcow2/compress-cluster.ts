/**
 * Compression of one qcow2 cluster (block/qcow2-threads.c: qcow2_zlib_compress,
 * qcow2_zstd_compress), the inverse of compress.ts.
 *  - zlib: raw deflate with a 4 KiB window (QEMU inflates with windowBits -12), by blockgraph's
 *    own WebAssembly encoder (assembly/deflate/): fflate's 32 KiB window may reach too far back.
 *  - zstd: one frame per cluster (ZSTD_compressStream2 with ZSTD_e_end) at zstd's default
 *    level 3, by @hpcc-js/wasm-zstd (libzstd compiled to WebAssembly; Node and browsers), loaded
 *    on first use.
 */
import { deflateRaw } from '../../../wasm/deflate.ts';
import type { BlockgraphExports } from '../../../wasm/load.ts';
import type { CompressionType } from './compress.ts';

type Zstd = Awaited<ReturnType<(typeof import('@hpcc-js/wasm-zstd'))['Zstd']['load']>>;
let zstd: Promise<Zstd> | undefined;

function loadZstd(): Promise<Zstd> {
  zstd ??= import('@hpcc-js/wasm-zstd').then((m) => m.Zstd.load());
  zstd.catch(() => (zstd = undefined));
  return zstd;
}

/**
 * Compresses `cluster` (a whole cluster). Returns the compressed bytes, or null when they would
 * be more than `limit` bytes (QEMU passes cluster size - 1: a cluster that does not shrink is
 * written uncompressed). `wasm` is the module instance to run deflate in.
 */
export async function compressCluster(
  type: CompressionType,
  wasm: BlockgraphExports,
  cluster: Uint8Array,
  limit: number,
): Promise<Uint8Array | null> {
  if (type === 'deflate') return deflateRaw(wasm, cluster, limit);
  const frame = (await loadZstd()).compress(cluster, 3);
  return frame.length <= limit ? frame : null;
}
