/**
 * Permission propagation and conflict checks (QEMU's bdrv_refresh_perms). Each edge carries the
 * permissions its parent takes on the child and those it lets others take. After every change to
 * the graph the edges are recomputed top-down: a node's cumulative needs (the union over its
 * parents) decide what its driver takes on its own children. Any two edges into one node must
 * tolerate each other, and nobody may write to a read-only node. On error nothing is changed.
 */
import type { ChildPermRequest } from '../block/driver.ts';
import { genericError } from '../block/errors.ts';
import type { BdrvChild, BlockNode, NodeParent } from '../block/node.ts';
import { Perm, PERM_ALL, PERM_NAMES } from '../block/types.ts';

const WRITERS = Perm.WRITE | Perm.WRITE_UNCHANGED;

/** Perm bits as QEMU's bdrv_perm_names() lists them: "write, resize". */
export function permNames(mask: number): string {
  return PERM_NAMES.filter(([bit]) => mask & bit)
    .map(([, name]) => name)
    .join(', ');
}

/** The default permissions a node takes on a child, by driver kind and role (QEMU's bdrv_default_perms). */
export function defaultChildPerms(node: BlockNode, req: ChildPermRequest): { perm: number; shared: number } {
  if (req.role === 'backing') {
    // Backing files are only read by us; others may read them and rewrite them unchanged, and
    // write or resize them when our own users tolerate changing data — an overlay nobody uses
    // (active commit's top after the pivot) does (bdrv_default_perms_for_cow).
    const changing = req.parentShared & Perm.WRITE ? Perm.WRITE | Perm.RESIZE : 0;
    return { perm: Perm.CONSISTENT_READ, shared: Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED | changing };
  }
  if (node.driver.kind === 'format' && node.driver.name !== 'raw') {
    // Metadata lives in the child: always read it consistently, own writes and resize.
    const perm = Perm.CONSISTENT_READ | (req.readOnly ? 0 : Perm.WRITE | Perm.RESIZE);
    const shared =
      (req.parentShared | Perm.WRITE_UNCHANGED | Perm.CONSISTENT_READ) & ~(Perm.WRITE | Perm.RESIZE);
    return { perm, shared };
  }
  // Filters and raw pass their parents' needs through (bdrv_filter_default_perms).
  return { perm: req.parentPerm, shared: req.parentShared };
}

export interface EdgeIn {
  parent: NodeParent;
  edge: BdrvChild;
}

/**
 * Recomputes every edge below `roots` and checks each node. Throws (restoring the old values)
 * on the first conflict. `reopenedReadOnly` are nodes a reopen is making read-only: a writer on
 * one of them gets bdrv_node_refresh_perm's reopen text instead of "Block node is read-only".
 */
export function refreshPermissions(
  allNodes: Iterable<BlockNode>,
  reopenedReadOnly: ReadonlySet<BlockNode> = new Set(),
): void {
  const nodes = [...allNodes];
  const saved = nodes.flatMap((n) => n.childList.map((e) => [e, e.perm, e.shared] as const));
  try {
    for (const node of topoOrder(nodes)) refreshNode(node, reopenedReadOnly.has(node));
  } catch (err) {
    for (const [e, perm, shared] of saved) Object.assign(e, { perm, shared });
    throw err;
  }
}

function refreshNode(node: BlockNode, reopenedReadOnly: boolean): void {
  let perm = 0;
  let shared = PERM_ALL;
  for (const { edge } of node.parents) {
    perm |= edge.perm;
    shared &= edge.shared;
  }
  checkNode(node, node.parents, reopenedReadOnly);
  if (node.options['force-share'] === true) shared = PERM_ALL;
  for (const edge of node.childList) {
    const req = { role: edge.role, parentPerm: perm, parentShared: shared, readOnly: node.readOnly };
    const p = node.driver.childPerms?.(req) ?? defaultChildPerms(node, req);
    edge.perm = p.perm;
    edge.shared = node.options['force-share'] === true ? PERM_ALL : p.shared;
  }
}

/** Throws QEMU's error when two users of `node` are incompatible or a writer meets a read-only node. */
export function checkNode(node: BlockNode, users: readonly EdgeIn[], reopenedReadOnly = false): void {
  for (const a of users) {
    if (a.edge.perm & WRITERS && node.readOnly) {
      throw genericError(
        reopenedReadOnly
          ? `Read-only block node '${node.nodeName}' cannot support read-write users`
          : 'Block node is read-only',
      );
    }
    for (const b of users) {
      if (a === b) continue;
      const conflict = a.edge.perm & ~b.edge.shared;
      if (!conflict) continue;
      throw genericError(
        `Permission conflict on node '${node.nodeName}': permissions '${permNames(conflict)}' are both ` +
          `required by ${a.parent.describe()} (uses node '${node.nodeName}' as '${a.edge.name}' child) and ` +
          `unshared by ${b.parent.describe()} (uses node '${node.nodeName}' as '${b.edge.name}' child).`,
      );
    }
  }
}

/** Parents before children (the graph is a DAG: a node is never its own descendant). */
function topoOrder(nodes: BlockNode[]): BlockNode[] {
  const order: BlockNode[] = [];
  const seen = new Set<BlockNode>();
  const visit = (n: BlockNode): void => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const { parent } of n.parents) if (isNode(parent)) visit(parent);
    order.push(n);
  };
  nodes.forEach(visit);
  return order;
}

function isNode(p: NodeParent): p is BlockNode {
  return 'childList' in p;
}
