/**
 * BlockBackend: what a frontend (the v86 IDE disk, virtio-blk, qemu-io, an export) attaches to,
 * as QEMU's block/block-backend.c. It owns the edge to the root node and, around every request:
 *  - checks it (no medium: ENOMEDIUM; beyond the end: EIO; writing a read-only drive: EPERM,
 *    counted as invalid in the statistics, as blk_check_byte_request and the devices do);
 *  - pads it to the root's request alignment, read-modify-writing partial blocks (alignment.ts);
 *  - orders it after the earlier requests it conflicts with and lets drain wait for it
 *    (request-tracker.ts): a read issued after a write, even one not awaited, sees that write;
 *  - accounts it (backend-stats.ts);
 *  - applies rerror/werror when a device is attached (error-policy.ts): BLOCK_IO_ERROR for every
 *    action; `stop` parks the request, records the io-status and stops the machine; `cont`
 *    (graph.runState) retries it. Without a device errors are reported as is, as qemu-io and
 *    exports see them in QEMU.
 * Buffers passed to read/write belong to the backend until the returned promise settles.
 */
import type { BlockGraph } from '../graph/graph.ts';
import { WELL_FORMED } from '../graph/node-name.ts';
import {
  alignedDiscard,
  alignedRead,
  alignedWrite,
  alignedWriteZeroes,
  paddedRange,
  requestAlignment,
} from './alignment.ts';
import { BlockAcctStats, nowNs, type AcctType, type BlockDeviceStats } from './backend-stats.ts';
import { errnoOf, genericError, ioError } from './errors.ts';
import {
  errorAction,
  ioErrorEvent,
  iostatusAfterError,
  iostatusEnabled,
  type ErrorAction,
  type IoStatus,
  type ReadErrorPolicy,
  type WriteErrorPolicy,
} from './error-policy.ts';
import type { BdrvChild, BlockNode, NodeParent } from './node.ts';
import { nodeInfo } from './node-info.ts';
import { RequestTracker, type RequestKind, type TrackedRequest } from './request-tracker.ts';
import type { ThrottleGroupMember } from './throttle/group.ts';
import { withThrottleInfo } from './throttle/backend-throttle.ts';
import { Perm, type WriteFlags, type ZeroOptions } from './types.ts';

export interface BackendOptions {
  readOnly?: boolean;
  werror?: WriteErrorPolicy;
  rerror?: ReadErrorPolicy;
  /** Let other users write the root too (-device ...,share-rw=on). */
  shareRw?: boolean;
  /** The attached device has removable media (a CD-ROM): query-block shows a tray. */
  removable?: boolean;
  /** Id of the device attached at creation (query-block `qdev`); see attachDevice. */
  device?: string;
  /** The write cache is on (cache=writeback, the default); off makes every write FUA. */
  writeback?: boolean;
  /**
   * Explicit permissions taken and shared on the root (blk_new's perm and shared_perm), for
   * block jobs; by default they follow readOnly and shareRw (see insert).
   */
  perms?: { readonly perm: number; readonly shared: number };
  /**
   * false: requests issued during a drain go through instead of waiting for its end
   * (blk_set_disable_request_queuing), for block jobs — the drain waits for the job to reach a
   * pause point, which it could not if its I/O were held back. Default true.
   */
  requestQueuing?: boolean;
}

/**
 * What a device with removable media lets the block layer see and do (QEMU's BlockDevOps); the
 * QMP media commands (qmp/commands/media.ts) drive the tray through it.
 */
export interface BlockDevOps {
  /** Closes the tray with the current medium (`load`), or opens it (blk_dev_change_media_cb). */
  changeMedia(load: boolean): void;
  /** Asks the guest to release the medium; `force` unlocks it (blk_dev_eject_request). */
  ejectRequest(force: boolean): void;
  isTrayOpen(): boolean;
  /** The guest locked the medium in (ATAPI PREVENT ALLOW MEDIUM REMOVAL). */
  isMediumLocked(): boolean;
}

/** Write-zeroes and discard order like writes. */
const TRACKED_KIND: Record<AcctType, RequestKind> = {
  rd: 'read',
  wr: 'write',
  unmap: 'write',
  flush: 'flush',
};

/** The request's part in the node, and what the error policy calls it. */
interface RequestPlan {
  type: AcctType;
  offset: number;
  bytes: number;
  io: (node: BlockNode, align: number) => Promise<void>;
}

export class BlockBackend implements NodeParent {
  readonly readOnly: boolean;
  private readonly werror: WriteErrorPolicy;
  private readonly rerror: ReadErrorPolicy;
  private readonly shareRw: boolean;
  private readonly writeback: boolean;
  private readonly perms: BackendOptions['perms'];
  private readonly requestQueuing: boolean;
  private removableMedia: boolean;
  private device: string | undefined;
  private devOps: BlockDevOps | undefined;
  private edge: BdrvChild | null = null;
  private iostatus: IoStatus = 'ok';
  private readonly tracker = new RequestTracker();
  private readonly acct = new BlockAcctStats();
  /** Wake-ups of requests parked by a `stop` action, called on `cont`. */
  private parked: (() => void)[] = [];
  private readonly resizeListeners = new Set<() => void>();
  /**
   * The I/O limits group this backend is a member of (-drive throttling.*, block_set_io_throttle);
   * set and cleared through block/throttle/backend-throttle.ts.
   */
  throttle: ThrottleGroupMember | undefined;
  private readonly unlisten: () => void;

  /**
   * Creates a backend named `name` ('' for an anonymous one, as behind -device drive=<node>) and
   * registers it in the graph. Refused with QEMU's texts (monitor_add_blk) when the name is
   * malformed, taken by a backend or by a node.
   */
  constructor(
    private readonly graph: BlockGraph,
    readonly name: string,
    opts: BackendOptions = {},
  ) {
    if (name) {
      if (!WELL_FORMED.test(name)) throw genericError('Invalid device name');
      if (graph.backends.has(name)) throw genericError(`Device with id '${name}' already exists`);
      if (graph.nodes.has(name)) {
        throw genericError(`Device name '${name}' conflicts with an existing node name`);
      }
      graph.backends.set(name, this);
      graph.deviceNames.add(name);
    }
    this.readOnly = opts.readOnly === true;
    this.werror = opts.werror ?? 'enospc';
    this.rerror = opts.rerror ?? 'report';
    this.shareRw = opts.shareRw === true;
    this.writeback = opts.writeback !== false;
    this.perms = opts.perms;
    this.requestQueuing = opts.requestQueuing !== false;
    this.removableMedia = opts.removable === true;
    this.device = opts.device;
    this.unlisten = graph.runState.listen((running) => {
      if (running) this.resume();
    });
  }

  get parentName(): string {
    return this.name;
  }

  /** As QEMU names a BlockBackend in permission errors (blk_root_get_parent_desc). */
  describe(): string {
    const id = this.name || this.device;
    return id ? `block device '${id}'` : 'an unnamed block device';
  }

  get root(): BlockNode | null {
    return this.edge?.node ?? null;
  }

  /**
   * A frontend attaches (QEMU's blk_attach_dev plus blk_iostatus_enable): from now on the error
   * policies apply and query-block shows `qdev` and, when a policy can stop, `io-status`.
   */
  attachDevice(id: string, removable = false): void {
    this.device = id;
    this.removableMedia = removable;
  }

  /** The id of the attached device (query-block `qdev`), if a device is attached. */
  get deviceId(): string | undefined {
    return this.device;
  }

  /** The attached device's removable-media callbacks, if it has a tray. */
  get deviceOps(): BlockDevOps | undefined {
    return this.devOps;
  }

  /** The device model sets its callbacks (blk_set_dev_ops); query-block then shows its tray. */
  setDevOps(ops: BlockDevOps | undefined): void {
    this.devOps = ops;
  }

  /**
   * Attaches `node` as the medium. Takes consistent-read (and write unless read-only) and shares
   * consistent-read, write-unchanged and resize (and write with share-rw), as QEMU's
   * blkconf_apply_backend_options does for a resizable device.
   */
  insert(node: BlockNode): void {
    if (this.edge) throw genericError(`There already is a medium in device '${this.name}'`);
    const perm = this.perms?.perm ?? Perm.CONSISTENT_READ | (this.readOnly ? 0 : Perm.WRITE);
    const shared =
      this.perms?.shared ??
      Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED | Perm.RESIZE | (this.shareRw ? Perm.WRITE : 0);
    this.edge = this.graph.attach(this, node, 'root', perm, shared);
  }

  /** Detaches the medium once in-flight requests are done (blk_remove_bs). */
  async remove(): Promise<void> {
    await this.drained(async () => {
      const edge = this.edge;
      this.edge = null;
      if (edge) await this.graph.detach(edge);
    });
  }

  /** Removes the medium and unregisters the backend from the graph (drive_del). */
  async close(): Promise<void> {
    await this.remove();
    if (this.throttle) this.graph.objects.throttleGroups.leave(this.throttle);
    this.throttle = undefined;
    this.unlisten();
    if (this.graph.backends.get(this.name) === this) {
      this.graph.backends.delete(this.name);
      this.graph.deviceNames.delete(this.name);
    }
  }

  length(): number {
    return this.root?.length() ?? 0;
  }

  read(offset: number, dst: Uint8Array): Promise<void> {
    const io = (node: BlockNode, a: number) => alignedRead(node, offset, dst, a);
    return this.submit({ type: 'rd', offset, bytes: dst.length, io });
  }

  write(offset: number, src: Uint8Array, flags: WriteFlags = {}): Promise<void> {
    const f = this.writeback ? flags : { ...flags, fua: true };
    const io = (node: BlockNode, a: number) => alignedWrite(node, offset, src, f, a);
    return this.submit({ type: 'wr', offset, bytes: src.length, io });
  }

  writeZeroes(offset: number, bytes: number, opts: ZeroOptions = {}): Promise<void> {
    const io = (node: BlockNode, a: number) => alignedWriteZeroes(node, offset, bytes, opts, a);
    return this.submit({ type: 'wr', offset, bytes, io });
  }

  discard(offset: number, bytes: number): Promise<void> {
    const io = (node: BlockNode, a: number) => alignedDiscard(node, offset, bytes, a);
    return this.submit({ type: 'unmap', offset, bytes, io });
  }

  flush(): Promise<void> {
    return this.submit({ type: 'flush', offset: 0, bytes: 0, io: (node) => node.flush() });
  }

  /**
   * Calls `listener` after every resize of the medium (blk_root_resize → the device's
   * resize_cb: virtio-blk announces the new capacity). Returns the function that unregisters it.
   */
  onResize(listener: () => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }

  /** NodeParent: the root's length changed. */
  resized(): void {
    for (const listener of [...this.resizeListeners]) listener();
  }

  /** Resolves when nothing is in flight; requests arriving meanwhile wait until it resolves. */
  drain(): Promise<void> {
    return this.drained(async () => {});
  }

  /**
   * Runs `section` with the backend quiesced (bdrv_drained_begin/end): in-flight requests have
   * completed or are parked until `cont`; new ones wait until `section` settles (so `section`
   * itself must not issue requests through this backend), unless request queuing is off.
   */
  async drained<T>(section: () => Promise<T>): Promise<T> {
    // Throttled requests go at once while drained (blk_root_drained_begin), or a drain would wait
    // for the limits.
    const throttle = this.throttle;
    throttle?.disableLimits();
    try {
      return await this.tracker.drained(section);
    } finally {
      throttle?.enableLimits();
    }
  }

  stats(): BlockDeviceStats {
    return this.acct.snapshot();
  }

  ioStatus(): IoStatus {
    return this.iostatus;
  }

  /** One query-block entry (QAPI BlockInfo, members in schema order). */
  queryBlock(): Record<string, unknown> {
    const info: Record<string, unknown> = { device: this.name };
    if (this.device !== undefined) info.qdev = this.device;
    // Without a device QEMU reports removable media: a medium can be inserted and removed.
    const locked = this.devOps?.isMediumLocked() ?? false;
    Object.assign(info, { type: 'unknown', removable: !this.device || this.removableMedia, locked });
    if (this.root) info.inserted = withThrottleInfo(nodeInfo(this.root, this.writeback), this.throttle);
    if (this.device && this.removableMedia) info.tray_open = this.devOps?.isTrayOpen() ?? false;
    if (this.iostatusOn()) info['io-status'] = this.iostatus;
    return info;
  }

  /**
   * Checks, orders and runs one request. Synchronous up to the tracker, so call order is kept.
   * The request leaves the tracker only after its promise settled, so that when a drain
   * resolves the callers of the drained requests have been answered.
   */
  private submit(plan: RequestPlan): Promise<void> {
    let node: BlockNode;
    try {
      node = this.check(plan);
    } catch (err) {
      return Promise.reject(err);
    }
    const end = plan.offset + plan.bytes;
    const range =
      plan.type === 'flush'
        ? { start: 0, end: Infinity }
        : paddedRange(plan.offset, end, requestAlignment(node), node.length());
    const req = this.tracker.add(TRACKED_KIND[plan.type], range.start, range.end, this.requestQueuing);
    const done = req.ready.then(() => this.run(req, plan, range.end));
    const finish = () => req.finish();
    done.then(finish, finish);
    return done;
  }

  /** Attempts the request until it succeeds, is reported, or is ignored; parks it on `stop`. */
  private async run(req: TrackedRequest, plan: RequestPlan, paddedEnd: number): Promise<void> {
    // I/O limits hold back reads and writes (zero writes included), not discards and flushes.
    if (this.throttle && (plan.type === 'rd' || plan.type === 'wr')) {
      await this.throttle.intercept(plan.bytes, plan.type === 'rd' ? 'read' : 'write');
    }
    for (;;) {
      // Checked again: the medium may have changed while the request waited.
      const node = this.check(plan);
      const start = nowNs();
      try {
        await plan.io(node, requestAlignment(node));
        this.acct.done(plan.type, plan.bytes, start);
        return;
      } catch (err) {
        const action = this.errorAction(plan.type === 'rd', err);
        if (action === 'ignore') return this.acct.done(plan.type, plan.bytes, start);
        if (action === 'report') {
          this.acct.failedOp(plan.type, start);
          throw err;
        }
        req.park();
        await new Promise<void>((resolve) => this.parked.push(resolve));
        req.unpark();
      } finally {
        // Failed writes count too: QEMU raises wr_highest_offset whatever the outcome.
        if (plan.type === 'wr' && plan.bytes > 0) {
          this.acct.wrHighestOffset = Math.max(this.acct.wrHighestOffset, paddedEnd);
        }
      }
    }
  }

  /** The root node the request may go to, or the error it fails with before reaching it. */
  private check(plan: RequestPlan): BlockNode {
    const node = this.root;
    if (!node) throw ioError('ENOMEDIUM');
    if (plan.type === 'flush') return node;
    const { offset, bytes } = plan;
    const len = node.length();
    const inRange = Number.isSafeInteger(offset) && Number.isSafeInteger(bytes) && offset >= 0 && bytes >= 0;
    if (!inRange || offset > len || len - offset < bytes) {
      this.acct.invalidOp(plan.type);
      throw ioError('EIO');
    }
    if (plan.type !== 'rd' && this.readOnly) {
      this.acct.invalidOp(plan.type);
      throw ioError('EPERM');
    }
    return node;
  }

  /** Decides and announces what happens to a failed request (blk_error_action). */
  private errorAction(isRead: boolean, err: unknown): ErrorAction {
    if (this.device === undefined) return 'report';
    const errno = errnoOf(err);
    const action = errorAction(isRead ? this.rerror : this.werror, errno);
    const withIostatus = this.iostatusOn();
    // The io-status is set before the event, so query-block never lags behind the events.
    if (action === 'stop' && withIostatus) this.iostatus = iostatusAfterError(this.iostatus, errno);
    this.graph.emit(
      'BLOCK_IO_ERROR',
      ioErrorEvent(this.name, this.root?.nodeName, isRead, action, withIostatus, errno),
    );
    if (action === 'stop') this.graph.runState.stop('io-error');
    return action;
  }

  private iostatusOn(): boolean {
    return this.device !== undefined && iostatusEnabled(this.werror, this.rerror);
  }

  /** `cont`: io-status back to ok, parked requests retried (qmp_cont, the devices' restart). */
  private resume(): void {
    this.iostatus = 'ok';
    const wake = this.parked;
    this.parked = [];
    for (const w of wake) w();
  }
}
