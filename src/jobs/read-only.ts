/**
 * bdrv_reopen_set_read_only for jobs: commit writes into a base and stream into a top that may
 * have been opened read-only (a backing file opened from an image header always is). QEMU
 * reopens such a node read-write for the job's duration and read-only again afterwards.
 */
import type { BlockNode } from '../block/node.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { reopen } from '../graph/reopen.ts';

/** Reopens `node` (and the children it opened itself, which inherit the flag) as `readOnly`. */
export async function setReadOnly(graph: BlockGraph, node: BlockNode, readOnly: boolean): Promise<void> {
  await reopen(graph, [reopenEntry(graph, node, readOnly)]);
}

/**
 * The node's current options as blockdev-reopen takes them. Children the node opened itself
 * (not blockdev-add'ed; bdrv_reopen_queue_child reopens those along) are given inline with the
 * new flag; the backing file (always read-only to its overlay) and other nodes' children by
 * node-name, so they stay as they are.
 */
function reopenEntry(graph: BlockGraph, node: BlockNode, readOnly: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    ...node.options,
    driver: node.driver.name,
    'node-name': node.nodeName,
    'read-only': readOnly,
  };
  for (const [key, spec] of Object.entries(node.driver.options)) {
    if (spec.type !== 'child') continue;
    const child = node.child(key);
    const inherits = child && key !== 'backing' && !graph.isMonitorOwned(child);
    if (child) entry[key] = inherits ? reopenEntry(graph, child, readOnly) : child.nodeName;
    else if (key === 'backing' || node.options[key] === null) entry[key] = null;
    else delete entry[key];
  }
  return entry;
}
