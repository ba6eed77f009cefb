/**
 * Probing an image's format before opening it (qemu-img without -f, -drive without format=):
 * the protocol node is opened read-only just long enough to read its first bytes.
 */
import { PROBE_BYTES, probeFormat } from '../config/probe.ts';
import type { OptionSource } from '../config/validate.ts';
import type { BlockGraph } from './graph.ts';

/** The format of the image behind protocol options `file`; 'raw' when `file` is a reference. */
export async function probeImageFormat(
  graph: BlockGraph,
  file: unknown,
  source: OptionSource,
): Promise<string> {
  if (typeof file !== 'object' || file === null) return 'raw';
  const node = await graph.open({ ...(file as Record<string, unknown>), 'read-only': true }, source);
  try {
    const head = new Uint8Array(PROBE_BYTES);
    await node.read(0, head);
    return probeFormat(head, node.filename());
  } finally {
    await graph.release(node);
  }
}
