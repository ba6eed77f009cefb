/**
 * Live graph changes (QEMU's block.c bdrv_replace_node, bdrv_set_backing_hd and the child
 * replacement of bdrv_reopen): edges are moved while the graph is drained, drivers are told
 * through BlockDriverOps.replaceChild, permissions are rechecked once for the whole change, and
 * on any refusal every step is undone in reverse, so the graph is exactly as before.
 */
import { genericError } from '../block/errors.ts';
import { BlockNode, type BdrvChild, type NodeParent } from '../block/node.ts';
import type { ChildRole } from '../block/types.ts';
import { refreshPermissions } from './permissions.ts';

/** One step of a live change; several are applied as one (QEMU's Transaction of noperm steps). */
export type GraphChange =
  /** `parent`'s child `name` becomes `child` (null: none) — bdrv_set_backing_hd, reopen's file=. */
  | {
      readonly op: 'set-child';
      readonly parent: BlockNode;
      readonly name: string;
      readonly child: BlockNode | null;
    }
  /**
   * Every parent of `from` (nodes and BlockBackends) uses `to` instead, except `to` itself and
   * nodes below `to` (which would make a cycle) — bdrv_replace_node.
   */
  | { readonly op: 'replace-node'; readonly from: BlockNode; readonly to: BlockNode }
  /** One edge (a BlockBackend's root, say) points to `to` instead — bdrv_replace_child. */
  | { readonly op: 'move-edge'; readonly edge: BdrvChild; readonly to: BlockNode };

/** What the graph gives this module: its nodes (for permissions) and the release of dropped nodes. */
export interface LiveGraph {
  readonly nodes: ReadonlyMap<string, BlockNode>;
  release(node: BlockNode): Promise<void>;
}

/**
 * Runs `section` drained around `nodes` (bdrv_drained_begin/end on each): every parent above
 * them that can quiesce (BlockBackends, jobs) is quiesced, and requests in flight on the nodes,
 * their ancestors and their descendants have completed. Sections nest.
 */
export async function drainedAround<T>(nodes: Iterable<BlockNode>, section: () => Promise<T>): Promise<T> {
  const region = new Set<BlockNode>();
  const quiescers = new Set<NodeParent>();
  for (const node of nodes) {
    collectAbove(node, region, quiescers);
    collectBelow(node, region);
  }
  const list = [...quiescers];
  const enter = (i: number): Promise<T> => {
    const parent = list[i];
    if (!parent?.drained) return settle(region).then(section);
    return parent.drained(() => enter(i + 1));
  };
  // Drivers holding requests back (throttle) let them go first, or the drain would wait them out.
  // The operations that began are the ones that end, even if a reopen replaced a node's.
  const began = [...region].map((node) => node.ops);
  for (const ops of began) ops.drainBegin?.();
  try {
    return await enter(0);
  } finally {
    for (const ops of began) ops.drainEnd?.();
  }
}

/**
 * Applies `changes` in order, drained, as one change: on any refusal (a driver without
 * replaceChild, a cycle, a permission conflict) nothing is changed and the first error is
 * thrown. With no changes it only rechecks permissions (after a reopen changed read-only flags;
 * `reopenedReadOnly` as for refreshPermissions). Nodes that lost their last user are released
 * afterwards; a parent that now sees a child of another length is told (resized: virtio-blk
 * announces the new capacity).
 */
export async function applyChanges(
  graph: LiveGraph,
  changes: readonly GraphChange[],
  reopenedReadOnly?: ReadonlySet<BlockNode>,
): Promise<void> {
  const touched = changes.flatMap(touchedBy);
  const before = childLengths(graph);
  const dropped = await drainedAround(touched, async () => {
    const undo: (() => void)[] = [];
    const old = new Set<BlockNode>();
    try {
      for (const change of changes) {
        if (change.op === 'set-child') setChild(change.parent, change.name, change.child, undo, old);
        else if (change.op === 'replace-node') replaceNode(change.from, change.to, undo, old);
        else moveOne(change.edge, change.to, undo, old);
      }
      refreshPermissions(graph.nodes.values(), reopenedReadOnly);
    } catch (err) {
      // A refused refresh has put every edge's permissions back itself.
      for (const step of undo.reverse()) step();
      throw err;
    }
    return old;
  });
  for (const [entry, length] of childLengths(graph)) {
    const was = before.get(entry);
    if (was !== undefined && was !== length) entry.parent.resized?.();
  }
  for (const node of dropped) await graph.release(node);
}

/** The length each parent sees of its child, by edge (edges keep their identity when moved). */
function childLengths(graph: LiveGraph): Map<{ parent: NodeParent; edge: BdrvChild }, number> {
  const out = new Map<{ parent: NodeParent; edge: BdrvChild }, number>();
  for (const node of graph.nodes.values()) for (const entry of node.parents) out.set(entry, node.length());
  return out;
}

/** The nodes a change affects, to drain around. */
function touchedBy(c: GraphChange): BlockNode[] {
  if (c.op === 'set-child') return c.child ? [c.parent, c.child] : [c.parent];
  if (c.op === 'replace-node') return [c.from, c.to];
  return [c.edge.node, c.to];
}

/** The move-edge step: one parent's edge re-pointed, a node parent's driver told. */
function moveOne(edge: BdrvChild, to: BlockNode, undo: (() => void)[], old: Set<BlockNode>): void {
  const from = edge.node;
  const entry = from.parents.find((p) => p.edge === edge);
  if (!entry || from === to) return;
  const { parent } = entry;
  if (parent instanceof BlockNode) {
    if (reaches(to, parent)) {
      throw genericError(
        `Making '${to.nodeName}' a ${edge.name} child of '${parent.nodeName}' would create a cycle`,
      );
    }
    tellDriver(parent, edge.name, to, from, undo);
    const options = parent.options;
    parent.options = { ...options, [edge.name]: to.nodeName };
    undo.push(() => (parent.options = options));
  }
  moveEdge(entry, from, to);
  undo.push(() => moveEdge(entry, to, from));
  old.add(from);
}

/** The set-child step: unlinks the old edge named `name`, links the new one, tells the driver. */
function setChild(
  parent: BlockNode,
  name: string,
  child: BlockNode | null,
  undo: (() => void)[],
  old: Set<BlockNode>,
): void {
  const i = parent.childList.findIndex((e) => e.name === name);
  const before = i >= 0 ? parent.childList[i]! : undefined;
  if (before?.node === child) return;
  const role = before?.role ?? roleOf(parent, name);
  if (child && reaches(child, parent)) {
    throw genericError(
      `Making '${child.nodeName}' a ${name} child of '${parent.nodeName}' would create a cycle`,
    );
  }
  tellDriver(parent, name, child, before?.node ?? null, undo);
  const options = parent.options;
  parent.options = { ...options, [name]: child ? child.nodeName : null };
  undo.push(() => (parent.options = options));
  if (before) {
    unlinkEdge(parent, before);
    old.add(before.node);
    undo.push(() => relinkEdge(parent, before, i));
  }
  if (child) {
    const edge: BdrvChild = { name, role, node: child, perm: 0, shared: 0 };
    parent.childList.push(edge);
    child.parents.push({ parent, edge });
    undo.push(() => unlinkEdge(parent, edge));
  }
}

/** The replace-node step: moves each edge into `from` over to `to`, node parents' drivers told. */
function replaceNode(from: BlockNode, to: BlockNode, undo: (() => void)[], old: Set<BlockNode>): void {
  for (const { parent, edge } of [...from.parents]) {
    // should_update_child: `to` keeps its own link to `from`, and so does anything below `to`.
    if (parent instanceof BlockNode && reaches(to, parent)) continue;
    moveOne(edge, to, undo, old);
  }
}

/** Tells `parent`'s driver its child `name` is now `child`, and how to take that back. */
function tellDriver(
  parent: BlockNode,
  name: string,
  child: BlockNode | null,
  before: BlockNode | null,
  undo: (() => void)[],
): void {
  const replace = parent.ops.replaceChild;
  if (!replace) {
    throw genericError(
      `Driver '${parent.driver.name}' of node '${parent.nodeName}' does not support replacing its '${name}' child`,
    );
  }
  replace.call(parent.ops, name, child);
  undo.push(() => replace.call(parent.ops, name, before));
}

/** The role a child `name` takes: the driver schema's, else the generic one of that name. */
function roleOf(parent: BlockNode, name: string): ChildRole {
  const spec = parent.driver.options[name];
  if (spec?.type === 'child' && spec.role) return spec.role;
  if (name === 'backing' || name === 'data-file') return name;
  return 'file';
}

/** Whether `target` is `from` or below it. */
function reaches(from: BlockNode, target: BlockNode): boolean {
  if (from === target) return true;
  return from.childList.some((e) => reaches(e.node, target));
}

function moveEdge(entry: { parent: NodeParent; edge: BdrvChild }, from: BlockNode, to: BlockNode): void {
  from.parents.splice(from.parents.indexOf(entry), 1);
  entry.edge.node = to;
  to.parents.push(entry);
}

function unlinkEdge(parent: BlockNode, edge: BdrvChild): void {
  parent.childList.splice(parent.childList.indexOf(edge), 1);
  const list = edge.node.parents;
  list.splice(
    list.findIndex((p) => p.edge === edge),
    1,
  );
}

function relinkEdge(parent: BlockNode, edge: BdrvChild, index: number): void {
  parent.childList.splice(index, 0, edge);
  edge.node.parents.push({ parent, edge });
}

/** Adds `node` and everything above it to `region`, and its quiescable non-node parents. */
function collectAbove(node: BlockNode, region: Set<BlockNode>, quiescers: Set<NodeParent>): void {
  if (region.has(node)) return;
  region.add(node);
  for (const { parent } of node.parents) {
    if (parent instanceof BlockNode) collectAbove(parent, region, quiescers);
    else if (parent.drained) quiescers.add(parent);
  }
}

function collectBelow(node: BlockNode, region: Set<BlockNode>): void {
  for (const { node: child } of node.childList) {
    region.add(child);
    collectBelow(child, region);
  }
}

/** Waits until no request is in flight on any node of `region` (requests may chain downwards). */
async function settle(region: Set<BlockNode>): Promise<void> {
  for (;;) {
    await Promise.all([...region].map((n) => n.drain()));
    if ([...region].every((n) => n.isIdle())) return;
  }
}
