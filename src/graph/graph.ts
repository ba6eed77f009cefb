/**
 * The node registry (QEMU's graph of BlockDriverStates plus the monitor's view of it).
 * `blockdevAdd` opens a node from blockdev-add options: children named in the options are opened
 * (inline objects) or looked up (node-name strings) first, then the parent; permissions are
 * checked over the whole graph; on any failure everything opened by this call is closed again.
 * Nodes added by the user live until `blockdevDel`; inline children live as long as their parent.
 */
import type { BlockBackend } from '../block/backend.ts';
import type { BlockDriver, EventSink, OpenContext } from '../block/driver.ts';
import { genericError, QmpError } from '../block/errors.ts';
import { BlockNode, type BdrvChild, type NodeParent } from '../block/node.ts';
import { RunState } from '../block/runstate.ts';
import type { ChildRole } from '../block/types.ts';
import { COMMON_NODE_OPTIONS, type OptionsSchema } from '../config/schema.ts';
import { validateOptions, type OptionSource } from '../config/validate.ts';
import { ObjectRegistry } from '../objects/registry.ts';
import { findDriver } from '../drivers/index.ts';
import { applyChanges, drainedAround, type GraphChange } from './live.ts';
import { checkNodeName, NodeNameAllocator } from './node-name.ts';
import { refreshPermissions } from './permissions.ts';
import { PROBED, withProbedFormat } from './probe.ts';

/** Options inherited by inline children unless they set them (QEMU's bdrv_inherited_options). */
const INHERITED = ['read-only', 'auto-read-only', 'cache', 'discard'] as const;
/**
 * What a backing child (and its children) defaults to instead of its parent's values: backing
 * files are opened read-only (block.c: bdrv_inherited_options, BDRV_CHILD_COW).
 */
const BACKING_DEFAULTS = { 'read-only': true, 'auto-read-only': false } as const;
/** Nesting deeper than this is refused rather than recursing without bound. */
const MAX_DEPTH = 32;

export class BlockGraph {
  readonly nodes = new Map<string, BlockNode>();
  /** Nodes created by blockdev-add (monitor-owned), as opposed to implicit inline children. */
  private readonly monitorOwned = new Set<BlockNode>();
  /** Names of frontends/backends; node-names may not clash with them. */
  readonly deviceNames = new Set<string>();
  /** Named BlockBackends (drives) by name; they register themselves. */
  readonly backends = new Map<string, BlockBackend>();
  /** The machine's run state (query-status, stop, cont). */
  readonly runState = new RunState((event, data) => this.emit(event, data));
  private readonly names = new NodeNameAllocator();

  /**
   * `objects` are the user-creatable objects (QEMU's /objects: secrets, throttle groups) the
   * graph's drivers and QMP commands see; the CLI passes those its --object options made.
   */
  constructor(
    readonly emit: EventSink = () => {},
    readonly objects: ObjectRegistry = new ObjectRegistry(),
  ) {}

  /** blockdev-add: opens a node (and its inline children) that lives until blockdevDel. */
  async blockdevAdd(options: Record<string, unknown>, source: OptionSource = 'qmp'): Promise<BlockNode> {
    const node = await this.open(options, source);
    this.monitorOwned.add(node);
    return node;
  }

  /** Opens a node without making it monitor-owned (frontends' -drive, CLI images). */
  async open(options: Record<string, unknown>, source: OptionSource = 'qmp'): Promise<BlockNode> {
    const opened: BlockNode[] = [];
    try {
      const node = await this.openNode(options, source, '', undefined, opened, 0);
      refreshPermissions(this.nodes.values());
      return node;
    } catch (err) {
      await this.unwind(opened);
      throw err;
    }
  }

  /** blockdev-del: only monitor-owned nodes nobody uses. */
  async blockdevDel(name: string): Promise<void> {
    const node = this.nodes.get(name);
    if (!node) throw genericError(`Failed to find node with node-name='${name}'`);
    // The checks and texts of QEMU's qmp_blockdev_del, in its order.
    if (node.parents.some(({ parent }) => !(parent instanceof BlockNode))) {
      throw genericError(`Node ${name} is in use`);
    }
    const overlay = node.parents.find(({ edge }) => edge.role === 'backing');
    if (overlay) {
      // The op blocker bdrv_set_backing_hd puts on a backing node.
      throw genericError(
        `Node '${name}' is busy: node is used as backing hd of '${overlay.parent.parentName}'`,
      );
    }
    if (!this.monitorOwned.has(node)) throw genericError(`Node ${name} is not owned by the monitor`);
    if (node.parents.length > 0) throw genericError(`Block device ${name} is in use`);
    this.monitorOwned.delete(node);
    await this.release(node);
  }

  /** Whether blockdev-add created `node` (it then lives until blockdev-del). */
  isMonitorOwned(node: BlockNode): boolean {
    return this.monitorOwned.has(node);
  }

  /** Closes a node that lost its last user, and then its children that lost theirs. */
  async release(node: BlockNode): Promise<void> {
    if (node.parents.length > 0 || this.monitorOwned.has(node)) return;
    this.nodes.delete(node.nodeName);
    // A close that fails (its last flush hit ENOSPC) must not keep the children open: their
    // locks would outlive the node. The first failure is reported once everything is released.
    let failure: unknown;
    const attempt = (p: Promise<void>) =>
      p.catch((err: unknown) => {
        failure ??= err;
      });
    await attempt(node.close());
    for (const edge of node.childList.splice(0)) {
      detachEdge(edge);
      await attempt(this.release(edge.node));
    }
    refreshPermissions(this.nodes.values());
    if (failure !== undefined) throw failure;
  }

  /** The node `name` names, or QEMU's lookup error. */
  lookup(name: string): BlockNode {
    const node = this.nodes.get(name);
    if (!node) throw new QmpError('GenericError', `Cannot find device='${name}' nor node-name='${name}'`);
    return node;
  }

  /** Attaches a non-node parent (a BlockBackend) to `node`; refused on a permission conflict. */
  attach(parent: NodeParent, node: BlockNode, name: string, perm: number, shared: number): BdrvChild {
    const edge: BdrvChild = { name, role: 'file', node, perm, shared };
    node.parents.push({ parent, edge });
    try {
      refreshPermissions(this.nodes.values());
    } catch (err) {
      detachEdge(edge);
      throw err;
    }
    return edge;
  }

  /** Detaches a non-node parent; the node stays if the monitor owns it or others use it. */
  async detach(edge: BdrvChild): Promise<void> {
    detachEdge(edge);
    refreshPermissions(this.nodes.values());
    await this.release(edge.node);
  }

  /**
   * bdrv_set_backing_hd / reopen's `file=`: `parent`'s child `name` becomes `child` (null: none),
   * drained, permissions rechecked; the old child is released if nothing else uses it.
   * See live.ts (applyChanges) for the refusals.
   */
  setChild(parent: BlockNode, name: string, child: BlockNode | null): Promise<void> {
    return applyChanges(this, [{ op: 'set-child', parent, name, child }]);
  }

  /**
   * bdrv_replace_node: every parent of `from` (nodes and BlockBackends) except `to` and the nodes
   * below it now uses `to`, drained, permissions rechecked; `from` is released if unused.
   */
  replaceNode(from: BlockNode, to: BlockNode): Promise<void> {
    return applyChanges(this, [{ op: 'replace-node', from, to }]);
  }

  /** Several set-child / replace-node steps as one drained change, undone together on refusal. */
  applyChanges(changes: readonly GraphChange[]): Promise<void> {
    return applyChanges(this, changes);
  }

  /** Runs `section` drained around `nodes` (bdrv_drained_begin/end; see live.ts). Sections nest. */
  drained<T>(nodes: Iterable<BlockNode>, section: () => Promise<T>): Promise<T> {
    return drainedAround(nodes, section);
  }

  private async openNode(
    options: Record<string, unknown>,
    source: OptionSource,
    path: string,
    inherit: Record<string, unknown> | undefined,
    opened: BlockNode[],
    depth: number,
  ): Promise<BlockNode> {
    if (depth > MAX_DEPTH) throw genericError(`Too deeply nested options at '${path}'`);
    const driver = driverOf(options, path, source);
    const raw = { ...pick(inherit, options, source), ...options };
    const schema: OptionsSchema = { ...COMMON_NODE_OPTIONS, ...driver.options };
    const valid = validateOptions(schema, raw, { source, path, driverName: driver.name });
    const nodeName = this.assignName(valid['node-name']);
    const readOnly = valid['read-only'] === true;

    const children = new Map<string, BlockNode | null>();
    const own: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(valid)) {
      const spec = schema[key];
      if (spec?.type !== 'child') {
        own[key] = value;
        continue;
      }
      const inherit = spec.role === 'backing' ? { ...valid, ...BACKING_DEFAULTS } : valid;
      children.set(key, await this.resolveChild(value, source, `${path}${key}.`, inherit, opened, depth));
    }
    const found: [string, BlockNode, ChildRole][] = [];
    const openChild = async (opts: Record<string, unknown>, name: string, role: ChildRole) => {
      // Options a driver builds are typed values, as in QMP. No `driver`: probe (bdrv_open_inherit).
      const options = opts.driver === undefined ? await withProbedFormat(this, opts, 'qmp') : opts;
      const child = await this.openNode(options, 'qmp', `${path}${name}.`, undefined, opened, depth + 1);
      found.push([name, child, role]);
      return child;
    };
    const probed = (options as { [PROBED]?: boolean })[PROBED] === true;
    const ctx: OpenContext = {
      nodeName,
      readOnly,
      probed,
      options: own,
      children,
      emit: this.emit,
      objects: this.objects,
      openChild,
    };
    const ops = await driver.open(ctx);
    const node = new BlockNode(nodeName, driver, ops, readOnly || ops.readOnly === true, valid);
    this.nodes.set(nodeName, node);
    opened.push(node);
    for (const [key, child] of children) {
      if (child) this.link(node, child, key, schema[key]?.role ?? 'file');
    }
    for (const [key, child, role] of found) this.link(node, child, key, role);
    return node;
  }

  private async resolveChild(
    value: unknown,
    source: OptionSource,
    path: string,
    parent: Record<string, unknown>,
    opened: BlockNode[],
    depth: number,
  ): Promise<BlockNode | null> {
    if (value === null || value === undefined) return null;
    if (typeof value === 'string') return this.lookup(value);
    return this.openNode(value as Record<string, unknown>, source, path, parent, opened, depth + 1);
  }

  private link(parent: BlockNode, child: BlockNode, name: string, role: ChildRole): void {
    const edge: BdrvChild = { name, role, node: child, perm: 0, shared: 0 };
    parent.childList.push(edge);
    child.parents.push({ parent, edge });
  }

  private assignName(requested: unknown): string {
    if (typeof requested !== 'string') return this.names.allocate((n) => this.nodes.has(n));
    checkNodeName(requested);
    if (this.nodes.has(requested)) throw genericError(`Duplicate nodes with node-name='${requested}'`);
    if (this.deviceNames.has(requested)) {
      throw genericError(`node-name=${requested} is conflicting with a device id`);
    }
    return requested;
  }

  /** Undoes a failed open: newest first, so parents close before their inline children. */
  private async unwind(opened: BlockNode[]): Promise<void> {
    for (const node of opened.reverse()) {
      for (const edge of node.childList.splice(0)) detachEdge(edge);
      this.nodes.delete(node.nodeName);
      await node.close().catch(() => {});
    }
  }
}

/**
 * The driver the options name. QEMU's texts differ by source: QAPI names the full path of a
 * missing member but only the member in a bad enum value; the legacy parsers have their own.
 */
function driverOf(options: Record<string, unknown>, path: string, source: OptionSource): BlockDriver {
  const name = options.driver;
  if (name === undefined) {
    if (source === 'legacy') throw genericError('Must specify either driver or file');
    throw genericError(`Parameter '${path}driver' is missing`);
  }
  const driver = typeof name === 'string' ? findDriver(name) : undefined;
  if (driver) return driver;
  if (source === 'legacy') throw genericError(`Unknown driver '${String(name)}'`);
  throw genericError(`Parameter 'driver' does not accept value '${String(name)}'`);
}

/**
 * The inherited options `own` does not set, in the form its source gives values: the parent's
 * are validated (typed), but a keyval child only takes strings, as QEMU's
 * bdrv_inherited_options sets them (qdict_set_default_str).
 */
function pick(
  inherit: Record<string, unknown> | undefined,
  own: Record<string, unknown>,
  source: OptionSource,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!inherit) return out;
  for (const key of INHERITED) {
    if (key in own || !(key in inherit)) continue;
    out[key] = source === 'cli' ? asKeyval(inherit[key]) : inherit[key];
  }
  return out;
}

/** A typed option value as keyval spells it: booleans on/off, numbers as text, objects nested. */
function asKeyval(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') return String(value);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asKeyval(v)]));
  }
  return value;
}

function detachEdge(edge: BdrvChild): void {
  const list = edge.node.parents;
  const i = list.findIndex((p) => p.edge === edge);
  if (i >= 0) list.splice(i, 1);
}
