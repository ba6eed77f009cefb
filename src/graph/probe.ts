/**
 * Probing an image's format before opening it (qemu-img without -f, -drive without format=):
 * the protocol node is opened read-only just long enough to read its first bytes.
 */
import { PROBE_BYTES, probeFormat } from '../config/probe.ts';
import type { OptionSource } from '../config/validate.ts';
import type { BlockGraph } from './graph.ts';

/**
 * Marks options whose `driver` was found by probing (QEMU's bs->probed). A symbol, so it is never
 * taken for a user option; object spread keeps it when options are copied.
 */
export const PROBED: unique symbol = Symbol('probed');

/** `options` (a format node over protocol options `file`) with its probed format filled in. */
export async function withProbedFormat(
  graph: BlockGraph,
  options: Record<string, unknown>,
  source: OptionSource,
): Promise<Record<string, unknown>> {
  return { ...options, driver: await probeImageFormat(graph, options.file, source), [PROBED]: true };
}

/** The format of the image behind protocol options `file`; 'raw' when `file` is a reference. */
async function probeImageFormat(graph: BlockGraph, file: unknown, source: OptionSource): Promise<string> {
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
