/**
 * BlockJob: a job that works on block nodes (QEMU's blockjob.c). Beyond Job it has a `device`
 * (its id, as query-block-jobs names it), a `speed` limit, the nodes it blocks, BlockBackends for
 * its I/O (so drains and permissions see the job like any other user), the on-error policies and
 * the io-status they set, and the BLOCK_JOB_* event data.
 */
import { BlockBackend, type BackendOptions } from '../block/backend.ts';
import { errnoOf, genericError } from '../block/errors.ts';
import type { BdrvChild, BlockNode, NodeParent } from '../block/node.ts';
import { PERM_ALL } from '../block/types.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { reopenReadOnly } from '../graph/reopen.ts';
import { Job, type JobOptions } from './job.ts';
import { RateLimit } from './ratelimit.ts';
import type { JobRegistry } from './registry.ts';

/** QAPI BlockdevOnError. */
export type OnError = 'report' | 'ignore' | 'enospc' | 'stop' | 'auto';

export interface BlockJobOptions extends JobOptions {
  /** Bytes per second; 0 (the default) is unlimited. */
  readonly speed?: number;
  /**
   * Read-only nodes the command reopened read-write for the job (read-only.ts writableForJob);
   * clean() makes them read-only again unless `keepWritable`.
   */
  readonly reopened?: readonly BlockNode[];
}

/** A copy's failed request: the read from the source or the write to the target. */
export interface CopyFailure {
  readonly isRead: boolean;
  readonly err: unknown;
}

/** What a failed request leads to (QAPI BlockErrorAction). */
export type ErrorAction = 'report' | 'ignore' | 'stop';

/**
 * The job's own BlockBackend: a drain over it pauses the job and waits until it has reached a
 * pause point (child_job_drained_begin/poll). Its requests are not queued during drains
 * (blk_set_disable_request_queuing in block_job_create): the job finishes the I/O it is in.
 */
class JobBackend extends BlockBackend {
  constructor(
    private readonly job: Job,
    graph: BlockGraph,
    opts: BackendOptions,
  ) {
    super(graph, '', { ...opts, requestQueuing: false });
  }

  override drained<T>(section: () => Promise<T>): Promise<T> {
    return this.job.whileDrained(() => super.drained(section));
  }
}

/**
 * block_job_add_bdrv's child_job edge, on a node the job does I/O on without a BlockBackend of
 * its own (backup through its copy-before-write filter): it takes no permission and shares all,
 * and a drain over it pauses the job as over a JobBackend.
 */
class JobParent implements NodeParent {
  constructor(private readonly job: BlockJob) {}

  get parentName(): string {
    return this.job.id;
  }

  /** child_job_get_parent_desc. */
  describe(): string {
    return `${this.job.type} job '${this.job.id}'`;
  }

  drained<T>(section: () => Promise<T>): Promise<T> {
    return this.job.whileDrained(section);
  }
}

export abstract class BlockJob extends Job {
  speed = 0;
  private readonly limit = new RateLimit();
  private iostatus: 'ok' | 'failed' | 'nospace' = 'ok';
  private readonly backends: BlockBackend[] = [];
  private readonly drainEdges: BdrvChild[] = [];
  /** Read-only nodes reopened read-write for the job, reopened read-only again in clean. */
  private readonly reopened: Set<BlockNode>;

  constructor(
    protected readonly registry: JobRegistry,
    opts: BlockJobOptions,
  ) {
    super(registry, opts);
    this.setSpeed(opts.speed ?? 0);
    this.reopened = new Set(opts.reopened);
  }

  /** The id under which query-block-jobs and the events name the job. */
  get device(): string {
    return this.id;
  }

  /** block_job_set_speed (without the verb check, done by the command). */
  setSpeed(speed: number): void {
    if (speed < 0) throw genericError("Parameter 'speed' expects a non-negative value");
    this.speed = speed;
    this.limit.setSpeed(speed);
    // A sleeping job recomputes its delay under the new limit.
    this.enter();
  }

  /** One query-block-jobs entry (QAPI BlockJobInfo, members in schema order). */
  info(): Record<string, unknown> {
    const info: Record<string, unknown> = {
      type: this.type,
      device: this.device,
      len: this.total,
      offset: this.current,
      busy: false,
      paused: this.isPaused,
      speed: this.speed,
      'io-status': this.iostatus,
      ready: this.status === 'ready' || this.status === 'standby',
      status: this.status,
      'auto-finalize': this.autoFinalize,
      'auto-dismiss': this.autoDismiss,
    };
    if (this.error !== undefined) info.error = this.error;
    return info;
  }

  protected override eventData(): Record<string, unknown> {
    return { device: this.device, len: this.total, offset: this.current, speed: this.speed, type: this.type };
  }

  /**
   * Opens a BlockBackend on `node` for the job's own I/O, taking `perm` and sharing `shared`
   * (Perm masks); closed when the job ends. Throws QEMU's permission errors on a conflict.
   */
  protected openBackend(node: BlockNode, perm: number, shared: number): BlockBackend {
    const backend = new JobBackend(this, this.registry.graph, { perms: { perm, shared } });
    backend.insert(node);
    this.backends.push(backend);
    return backend;
  }

  /**
   * Drains over `node` pause the job (block_job_add_bdrv), for nodes its I/O reaches other than
   * through openBackend. The edge follows `node`'s replacements and goes when the job ends.
   */
  protected pauseOnDrains(node: BlockNode): void {
    this.drainEdges.push(this.registry.graph.attach(new JobParent(this), node, 'job', 0, PERM_ALL));
  }

  /** `node` stays writable after the job (active commit's base has become the active layer). */
  protected keepWritable(node: BlockNode): void {
    this.reopened.delete(node);
  }

  /** Copies [offset, offset + bytes) from `reader` to `writer`; returns the failure, if any. */
  protected async copyRange(
    reader: BlockBackend,
    writer: BlockBackend,
    offset: number,
    bytes: number,
  ): Promise<CopyFailure | undefined> {
    const buf = new Uint8Array(bytes);
    let isRead = true;
    try {
      await reader.read(offset, buf);
      isRead = false;
      await writer.write(offset, buf);
      return undefined;
    } catch (err) {
      return { isRead, err };
    }
  }

  /** Accounts `bytes` done and sleeps as the speed limit asks; a pause point either way. */
  protected async throttle(bytes: number): Promise<void> {
    await this.sleep(this.limit.delay(bytes));
  }

  /**
   * block_job_error_action: decides what a failed request leads to under `policy`, sends
   * BLOCK_JOB_ERROR, and for `stop` pauses the job as a user pause (job-resume continues it) and
   * sets the io-status. The caller retries after `stop`, skips after `ignore`, fails on `report`.
   */
  protected errorAction(policy: OnError, isRead: boolean, err: unknown): ErrorAction {
    const errno = errnoOf(err);
    const action: ErrorAction =
      policy === 'enospc' || policy === 'auto' ? (errno === 'ENOSPC' ? 'stop' : 'report') : policy;
    this.registry.emit('BLOCK_JOB_ERROR', {
      device: this.device,
      operation: isRead ? 'read' : 'write',
      action,
    });
    if (action === 'stop') {
      this.pauseAsUser();
      if (this.iostatus === 'ok') this.iostatus = errno === 'ENOSPC' ? 'nospace' : 'failed';
    }
    return action;
  }

  protected override onUserResume(): void {
    this.iostatus = 'ok';
  }

  /** Closes the job's backends: before a pivot, so their permissions do not meet the drive's. */
  protected async closeBackends(): Promise<void> {
    for (const backend of this.backends.splice(0)) await backend.close();
  }

  /** Releases the backends and the blocked nodes. Subclasses call it from their own clean. */
  protected override async clean(): Promise<void> {
    this.registry.unblock(this);
    for (const edge of this.drainEdges.splice(0)) await this.registry.graph.detach(edge);
    await this.closeBackends();
    // As QEMU (errp NULL): a node that cannot go back to read-only stays writable.
    for (const node of this.reopened) await reopenReadOnly(this.registry.graph, node).catch(() => {});
    this.reopened.clear();
  }
}
