/**
 * bdrv_reopen_set_read_only for jobs: commit writes into a base and stream into a top that may
 * have been opened read-only (a backing file opened from an image header always is). QEMU's
 * commands (commit_start, commit_active_start, stream_start) reopen such a node read-write before
 * the job starts — a failure is the command's error — and the job reopens it read-only when it
 * ends (BlockJob.clean, with the graph's reopenReadOnly).
 */
import type { BlockNode } from '../block/node.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { reopen } from '../graph/reopen.ts';

/**
 * Makes `node` (and the children it opened itself) writable if it is read-only; returns the
 * nodes reopened (BlockJobOptions.reopened): `[node]`, or none when it was writable already.
 */
export async function writableForJob(graph: BlockGraph, node: BlockNode): Promise<BlockNode[]> {
  if (!node.readOnly) return [];
  await reopen(graph, [writableEntry(graph, node)]);
  return [node];
}

/**
 * The node's current options as blockdev-reopen takes them, made writable. The graph's reopen
 * does not take children along to read-write (QEMU's reopen queue does not inherit it back), so
 * the children the node opened itself (not blockdev-add'ed) are given inline, writable too; the
 * backing file (always read-only to its overlay) and other nodes' children by node-name.
 */
function writableEntry(graph: BlockGraph, node: BlockNode): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    ...node.options,
    driver: node.driver.name,
    'node-name': node.nodeName,
    'read-only': false,
  };
  for (const [key, spec] of Object.entries(node.driver.options)) {
    if (spec.type !== 'child') continue;
    const child = node.child(key);
    const inherits = child && key !== 'backing' && !graph.isMonitorOwned(child);
    if (child) entry[key] = inherits ? writableEntry(graph, child) : child.nodeName;
    else if (key === 'backing' || node.options[key] === null) entry[key] = null;
    else delete entry[key];
  }
  return entry;
}
