/**
 * blockdev-reopen (QEMU 7.2 block.c bdrv_reopen_multiple and its prepare/commit steps): each
 * entry names a node and gives its full options; omitted options go back to their defaults,
 * except children, which stay. All entries are checked before anything changes, then applied
 * drained as one change.
 *
 * What may change, as QEMU decides it:
 *  - read-only, auto-read-only, cache, discard, detect-zeroes (force-share may not);
 *  - the `file` and `backing` children, by node-name (or backing: null) — how filters are
 *    inserted and removed under a node; another child only keeps its node; an inline child
 *    object reopens the current child with those options;
 *  - driver options: where the driver reopens in place (BlockDriverOps.reopen), or for format
 *    drivers, which are reopened by closing their operations and opening new ones over the same
 *    children (qcow2's options all apply at open); other drivers keep theirs ("Cannot change
 *    the option 'x'").
 * A driver that captured read-only at open (a persistent protocol such as `file`, whose
 * descriptor has a mode) is reopened the same way when read-only or cache change.
 */
import type { BlockDriver, BlockDriverOps, OpenContext } from '../block/driver.ts';
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { COMMON_NODE_OPTIONS, type OptionsSchema } from '../config/schema.ts';
import { validateOptions } from '../config/validate.ts';
import { findDriver } from '../drivers/index.ts';
import type { BlockGraph } from './graph.ts';
import { applyChanges, type GraphChange } from './live.ts';

/** Children blockdev-reopen may point elsewhere (bdrv_reopen_parse_file_or_backing). */
const REPLACEABLE = new Set(['file', 'backing']);

/** One node's part of a reopen, worked out before anything changes. */
interface NodePlan {
  readonly node: BlockNode;
  readonly options: Record<string, unknown>;
  readonly readOnly: boolean;
  /** How the driver takes the new options. */
  readonly mode: 'in-place' | 'reopen' | 'flag';
}

type SetChild = Extract<GraphChange, { op: 'set-child' }>;

interface Plan {
  readonly nodes: NodePlan[];
  readonly changes: SetChild[];
}

/**
 * Reopens every node `entries` names (blockdev-reopen's `options` list, unvalidated; QAPI errors
 * name members as `options[i].x`). Throws QEMU's texts, having changed nothing, when an entry is
 * refused.
 */
export async function reopen(graph: BlockGraph, entries: readonly Record<string, unknown>[]): Promise<void> {
  const valid = entries.map((raw, i) => validate(raw, `options[${i}].`));
  const plan: Plan = { nodes: [], changes: [] };
  for (const [i, options] of valid.entries()) {
    const name = options['node-name'];
    if (typeof name !== 'string') throw genericError('node-name not specified');
    const node = graph.nodes.get(name);
    if (!node) throw genericError(`Failed to find node with node-name='${name}'`);
    planNode(graph, node, entries[i]!, options, { prefix: '', path: `options[${i}].` }, plan);
  }
  await graph.drained(
    plan.nodes.map((p) => p.node),
    () => commit(graph, plan),
  );
}

/** QAPI's check of one BlockdevOptions entry against its driver's schema. */
function validate(raw: Record<string, unknown>, path: string): Record<string, unknown> {
  const name = raw.driver;
  if (name === undefined) throw genericError(`Parameter '${path}driver' is missing`);
  const driver = typeof name === 'string' ? findDriver(name) : undefined;
  if (!driver) throw genericError(`Parameter 'driver' does not accept value '${String(name)}'`);
  return validateOptions(schemaOf(driver), raw, { source: 'qmp', path, driverName: driver.name });
}

function schemaOf(driver: BlockDriver): OptionsSchema {
  return { ...COMMON_NODE_OPTIONS, ...driver.options };
}

/**
 * Where an entry's options sit: `prefix` names them in reopen's own texts ('file.'), `path` in
 * QAPI's ('options[0].file.').
 */
interface Where {
  readonly prefix: string;
  readonly path: string;
}

/** bdrv_reopen_prepare's checks for `node`, in QEMU's order, adding its plan (and its inline children's). */
function planNode(
  graph: BlockGraph,
  node: BlockNode,
  raw: Record<string, unknown>,
  valid: Record<string, unknown>,
  at: Where,
  plan: Plan,
): void {
  const prefix = at.prefix;
  const schema = schemaOf(node.driver);
  if ('backing' in schema && !('backing' in raw) && hasBacking(node)) {
    throw genericError(`backing is missing for '${node.nodeName}'`);
  }
  if (valid.driver !== node.driver.name) throw cannotChange(`${prefix}driver`);
  const options: Record<string, unknown> = { ...valid };
  for (const [key, spec] of Object.entries(schema)) {
    if (spec.type !== 'child') continue;
    if (!(key in raw)) {
      if (key in node.options) options[key] = node.options[key];
      continue;
    }
    const child = { prefix: `${prefix}${key}.`, path: `${at.path}${key}.` };
    options[key] = planChild(graph, node, key, raw[key], child, plan);
  }
  if ((valid['force-share'] ?? false) !== (node.options['force-share'] ?? false)) {
    throw cannotChange(`${prefix}force-share`);
  }
  const readOnly = valid['read-only'] === true;
  plan.nodes.push({ node, options, readOnly, mode: driverMode(node, raw, valid, readOnly, prefix) });
  if (readOnly && !node.readOnly) planInherited(graph, node, plan);
}

/**
 * A node made read-only takes along the children it opened itself (not its backing) that no
 * entry names: they inherit read-only in QEMU's reopen queue (bdrv_reopen_queue_child), and do
 * not inherit it back when the parent later becomes writable again.
 */
function planInherited(graph: BlockGraph, node: BlockNode, plan: Plan): void {
  for (const { role, node: child } of node.childList) {
    if (role === 'backing' || child.readOnly) continue;
    if (graph.isMonitorOwned(child) || plan.nodes.some((p) => p.node === child)) continue;
    const raw = currentOptions(child);
    planNode(graph, child, raw, validate(raw, ''), { prefix: '', path: '' }, plan);
  }
}

/** The new value of child option `key`: a node-name (maybe a new child), null, or a reopened inline child. */
function planChild(
  graph: BlockGraph,
  node: BlockNode,
  key: string,
  value: unknown,
  at: Where,
  plan: Plan,
): unknown {
  const current = node.child(key) ?? null;
  const name = at.prefix.slice(0, -1);
  if (value !== null && typeof value === 'object') {
    // An inline child: the current child reopened with these options.
    const raw = value as Record<string, unknown>;
    if (!current) throw cannotChange(name);
    planNode(graph, current, raw, validate(raw, at.path), at, plan);
    return current.nodeName;
  }
  const child = value === null ? null : findChild(graph, String(value));
  if (child === current) return value;
  if (!REPLACEABLE.has(key)) throw cannotChange(name);
  plan.changes.push({ op: 'set-child', parent: node, name: key, child });
  return value;
}

/** bdrv_lookup_bs(NULL, name) as reopen calls it, with its text. */
function findChild(graph: BlockGraph, name: string): BlockNode {
  const node = graph.nodes.get(name);
  if (!node) throw genericError(`Cannot find device='' nor node-name='${name}'`);
  return node;
}

/** A backing child, or one the image names (QEMU's bs->backing_file): `backing` must then be given. */
function hasBacking(node: BlockNode): boolean {
  if (node.child('backing')) return true;
  return (node.ops.imageFacts?.().backingFilename ?? '') !== '';
}

/** How the driver will take the new options; refuses changes it cannot take. */
function driverMode(
  node: BlockNode,
  raw: Record<string, unknown>,
  valid: Record<string, unknown>,
  readOnly: boolean,
  prefix: string,
): NodePlan['mode'] {
  if (node.ops.reopen) return 'in-place';
  if (node.driver.kind === 'format') return 'reopen';
  for (const key of Object.keys(node.driver.options)) {
    if (node.driver.options[key]?.type === 'child' || !(key in raw)) continue;
    if (JSON.stringify(valid[key]) !== JSON.stringify(node.options[key]))
      throw cannotChange(`${prefix}${key}`);
  }
  const cacheChanged = JSON.stringify(valid.cache) !== JSON.stringify(node.options.cache);
  const captured = node.driver.kind === 'protocol' && node.driver.capabilities.persistent;
  return captured && (readOnly !== node.readOnly || cacheChanged) ? 'reopen' : 'flag';
}

function cannotChange(option: string) {
  return genericError(`Cannot change the option '${option}'`);
}

/**
 * Applies a checked plan, drained: the new read-only flags and children are checked together
 * for permissions (refused: nothing changed), then each driver takes its options — nodes
 * becoming read-only from the top down (a format writes its metadata back while its file is
 * still writable), the others from the bottom up (a file is writable before its format opens
 * its writer). A driver that fails then is given its old options back, as are those before it.
 */
async function commit(graph: BlockGraph, plan: Plan): Promise<void> {
  const oldReadOnly = new Map(plan.nodes.map((p) => [p.node, p.node.readOnly] as const));
  const toReadOnly = new Set(plan.nodes.filter((p) => p.readOnly && !p.node.readOnly).map((p) => p.node));
  const undoChanges = plan.changes.map((c): SetChild => ({ ...c, child: c.parent.child(c.name) ?? null }));
  for (const p of plan.nodes) p.node.readOnly = p.readOnly;
  try {
    await applyChanges(graph, plan.changes, toReadOnly);
  } finally {
    for (const [node, ro] of oldReadOnly) node.readOnly = ro;
  }
  const order = [
    ...topDown(plan.nodes.filter((p) => toReadOnly.has(p.node))),
    ...topDown(plan.nodes.filter((p) => !toReadOnly.has(p.node))).reverse(),
  ];
  const done: { plan: NodePlan; options: Readonly<Record<string, unknown>>; readOnly: boolean }[] = [];
  try {
    for (const p of order) {
      const before = { plan: p, options: p.node.options, readOnly: p.node.readOnly };
      await applyDriver(graph, p.node, p.options, p.readOnly, p.mode);
      done.push(before);
    }
  } catch (err) {
    for (const d of done.reverse()) {
      await applyDriver(graph, d.plan.node, { ...d.options }, d.readOnly, d.plan.mode).catch(() => {});
    }
    await applyChanges(graph, undoChanges.reverse()).catch(() => {});
    throw err;
  }
}

/** Parents before children among the planned nodes. */
function topDown(plans: NodePlan[]): NodePlan[] {
  const below = (a: BlockNode, b: BlockNode): boolean =>
    a.childList.some((e) => e.node === b || below(e.node, b));
  return [...plans].sort((x, y) => (below(x.node, y.node) ? -1 : below(y.node, x.node) ? 1 : 0));
}

/** One node takes its new options and read-only flag, after its cached writes reached its children. */
async function applyDriver(
  graph: BlockGraph,
  node: BlockNode,
  options: Record<string, unknown>,
  readOnly: boolean,
  mode: NodePlan['mode'],
): Promise<void> {
  await node.flush();
  const own = ownOptions(node.driver, options);
  if (mode === 'in-place') await node.ops.reopen!(own, readOnly);
  if (mode === 'reopen') node.ops = await reopenOps(graph, node, own, readOnly);
  node.readOnly = readOnly || node.ops.readOnly === true;
  node.options = options;
}

/** The driver's options without its children, as `open` gets them. */
function ownOptions(driver: BlockDriver, options: Record<string, unknown>): Record<string, unknown> {
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (driver.options[key]?.type !== 'child') own[key] = value;
  }
  return own;
}

/**
 * Closes the node's operations and opens new ones over the same children; if that open fails,
 * the old options are opened again and the failure is thrown.
 */
async function reopenOps(
  graph: BlockGraph,
  node: BlockNode,
  own: Record<string, unknown>,
  readOnly: boolean,
): Promise<BlockDriverOps> {
  const children = new Map<string, BlockNode | null>();
  for (const [key, spec] of Object.entries(node.driver.options)) {
    if (spec.type !== 'child') continue;
    const child = node.child(key);
    if (child) children.set(key, child);
    else if (node.options[key] === null) children.set(key, null);
  }
  const context = (options: Record<string, unknown>, ro: boolean): OpenContext => ({
    nodeName: node.nodeName,
    readOnly: ro,
    options,
    children,
    emit: graph.emit,
  });
  await node.ops.close?.();
  try {
    return await node.driver.open(context(own, readOnly));
  } catch (err) {
    node.ops = await node.driver.open(context(ownOptions(node.driver, { ...node.options }), node.readOnly));
    throw err;
  }
}

/**
 * bdrv_reopen_set_read_only(node, true) as an external snapshot's commit calls it: `node` with
 * its current options made read-only (and with it the children it opened itself).
 */
export async function reopenReadOnly(graph: BlockGraph, node: BlockNode): Promise<void> {
  await reopen(graph, [currentOptions(node)]);
}

/** A node's options as blockdev-reopen takes them, children by node-name, read-only set. */
function currentOptions(node: BlockNode): Record<string, unknown> {
  const options: Record<string, unknown> = { ...node.options, 'read-only': true };
  for (const [key, spec] of Object.entries(node.driver.options)) {
    if (spec.type !== 'child') continue;
    const child = node.child(key);
    if (child) options[key] = child.nodeName;
    else if (key === 'backing' || node.options[key] === null) options[key] = null;
    else delete options[key];
  }
  return { ...options, driver: node.driver.name, 'node-name': node.nodeName };
}
