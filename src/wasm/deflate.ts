/**
 * Raw deflate with a 4 KiB window (assembly/deflate/): what qcow2 compressed clusters need,
 * since QEMU inflates them with windowBits -12 and a stream reaching further back is refused.
 */
import type { BlockgraphExports } from './load.ts';

/**
 * Compresses `data` into one raw deflate stream; null when the stream would be longer than `cap`
 * bytes (qcow2 stores a cluster compressed only if that makes it smaller).
 */
export function deflateRaw(exports: BlockgraphExports, data: Uint8Array, cap: number): Uint8Array | null {
  const input = exports.deflateBuffer(data.length, cap) >>> 0;
  // deflateBuffer may have grown memory: take the view after it.
  new Uint8Array(exports.memory.buffer).set(data, input);
  const n = exports.deflateRaw(data.length, cap);
  if (n < 0) return null;
  const output = exports.deflateOutput() >>> 0;
  return new Uint8Array(exports.memory.buffer).slice(output, output + n);
}
