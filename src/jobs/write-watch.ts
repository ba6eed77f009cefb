/**
 * A minimal write notifier for jobs (what QEMU gets from dirty bitmaps, serialising requests and
 * the mirror_top filter): a watcher runs around every write-type request that reaches a node
 * (write, writeZeroes, discard, from any parent). It performs the request itself, so it can hold
 * it back (stream orders guest writes after its own copy writes), see it settle (mirror marks
 * the bytes dirty) and act before the request completes (active mirror writes the data to its
 * target). The node's methods are wrapped on the instance while any watcher is installed.
 */
import { BlockNode } from '../block/node.ts';
import type { WriteFlags } from '../block/types.ts';
import type { BlockGraph } from '../graph/graph.ts';

export interface WriteRequest {
  readonly offset: number;
  readonly bytes: number;
  readonly flags: WriteFlags | undefined;
  /** The data of a plain write; undefined for writeZeroes and discard. */
  readonly data: Uint8Array | undefined;
}

/** Runs around one request: must call `perform` exactly once and settle as it does. */
export type WriteWatcher = (req: WriteRequest, perform: () => Promise<void>) => Promise<void>;

const WATCHERS = new WeakMap<BlockNode, Set<WriteWatcher>>();
const WRAPPED = ['write', 'writeZeroes', 'discard'] as const;

/**
 * Installs `watcher` on `node` in a drained section: a request already in flight would have
 * called the unwatched method and could settle unseen after the job looked at its bytes (what
 * QEMU's dirty bitmap, enabled before the job scans, never misses). Returns the remover.
 */
export async function watchWrites(
  graph: BlockGraph,
  node: BlockNode,
  watcher: WriteWatcher,
): Promise<() => void> {
  await graph.drained([node], async () => {
    let set = WATCHERS.get(node);
    if (!set) {
      WATCHERS.set(node, (set = new Set()));
      wrap(node, set);
    }
    set.add(watcher);
  });
  const set = WATCHERS.get(node)!;
  return () => {
    set.delete(watcher);
    if (set.size > 0) return;
    WATCHERS.delete(node);
    for (const name of WRAPPED) delete (node as unknown as Record<string, unknown>)[name];
  };
}

function wrap(node: BlockNode, set: Set<WriteWatcher>): void {
  // The watchers present when the request starts nest around it, the first outermost. The
  // request itself always calls the prototype's method: a watcher cannot re-enter the wrapper.
  const around = (req: WriteRequest, op: () => Promise<void>): Promise<void> =>
    [...set].reduceRight<() => Promise<void>>((inner, w) => () => w(req, inner), op)();
  const proto = BlockNode.prototype;
  Object.assign(node, {
    write: (offset: number, src: Uint8Array, flags?: WriteFlags) =>
      around({ offset, bytes: src.length, flags, data: src }, () =>
        proto.write.call(node, offset, src, flags),
      ),
    writeZeroes: (offset: number, bytes: number, opts?: { unmap?: boolean }) =>
      around({ offset, bytes, flags: undefined, data: undefined }, () =>
        proto.writeZeroes.call(node, offset, bytes, opts),
      ),
    discard: (offset: number, bytes: number) =>
      around({ offset, bytes, flags: undefined, data: undefined }, () =>
        proto.discard.call(node, offset, bytes),
      ),
  });
}
