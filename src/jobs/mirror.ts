/**
 * blockdev-mirror and active block-commit (QEMU's block/mirror.c): copies `source` to `target`
 * while the guest keeps writing to the source. A write watcher marks the chunks guest writes
 * touch dirty (DirtyMap); the job copies dirty chunks until none is left, goes ready, and keeps
 * copying new writes until job-complete, when it copies the last dirty chunks with the source
 * drained and pivots: every user of the source uses the target instead. A cancel while ready
 * ends the job successfully without pivoting (QEMU's soft cancel); otherwise it fails.
 *
 * What is dirty at the start: `full` the whole source, `top` what the source's own layer
 * allocates, `none` nothing; active commit what the layers above its base allocate.
 */
import type { BlockBackend } from '../block/backend.ts';
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { RangeLock } from '../block/range-lock.ts';
import { Perm, PERM_ALL } from '../block/types.ts';
import { BlockJob, type BlockJobOptions, type CopyFailure, type OnError } from './block-job.ts';
import { allocatedBetween } from './chain.ts';
import { DirtyMap } from './dirty.ts';
import type { JobRegistry } from './registry.ts';
import { watchWrites, type WriteRequest } from './write-watch.ts';

export type MirrorSync = 'full' | 'top' | 'none';

/**
 * mirror.c's defaults, which active commit uses too: the bitmap granularity of a target without
 * clusters (bdrv_get_default_bitmap_granularity) and DEFAULT_MIRROR_BUF_SIZE.
 */
export const MIRROR_DEFAULTS = { granularity: 64 * 1024, bufSize: 1024 * 1024 } as const;

/** BLOCK_JOB_SLICE_TIME: how long an idle mirror sleeps. */
const SLICE_MS = 100;
/** MAX_IN_FLIGHT in block/mirror.c. */
const MAX_IN_FLIGHT = 16;

export interface MirrorOptions extends BlockJobOptions {
  readonly source: BlockNode;
  readonly target: BlockNode;
  /** What is copied before the guest's new writes: a sync mode, or (active commit) the layers above `base`. */
  readonly sync: MirrorSync | { readonly base: BlockNode; readonly baseDepth: number };
  /** Bytes one dirty bit covers (a power of 2, 512 B to 64 MiB). */
  readonly granularity: number;
  /** The most bytes one copy moves. */
  readonly bufSize: number;
  readonly onSourceError?: OnError;
  readonly onTargetError?: OnError;
  /** QAPI MirrorCopyMode: whether guest writes also go to the target synchronously. */
  readonly copyMode?: 'background' | 'write-blocking';
}

export class MirrorJob extends BlockJob {
  readonly type: 'mirror' | 'commit';
  private readonly dirty: DirtyMap;
  private completing = false;
  /** Copies and guest writes in flight on the source, by byte range: overlapping ones wait. */
  private readonly inFlight = new RangeLock();
  private unwatch: () => void = () => {};
  /** Where the search for the next dirty run starts (copies go round the disk in order). */
  private cursor = 0;

  constructor(
    registry: JobRegistry,
    private readonly opts: MirrorOptions,
  ) {
    super(registry, opts);
    this.type = typeof opts.sync === 'object' ? 'commit' : 'mirror';
    this.dirty = new DirtyMap(opts.source.length(), opts.granularity);
  }

  protected override onComplete(): void {
    this.completing = true;
  }

  protected override softCancel(): boolean {
    return this.status === 'ready' || this.status === 'standby';
  }

  protected async run(): Promise<void> {
    const { source, target } = this.opts;
    // mirror_run's check, after the job started: the job fails with it.
    if (target.length() !== source.length()) {
      this.total = 0;
      throw genericError('Source and target image have different sizes');
    }
    // Installed before the job has backends: its drain would otherwise wait for the job itself.
    this.unwatch = await watchWrites(this.registry.graph, source, (req, perform) =>
      this.guestWrite(req, perform),
    );
    const reader = this.openBackend(source, Perm.CONSISTENT_READ, PERM_ALL);
    // Active commit writes into a backing file its overlays still read: the chain above base is
    // only valid again after the pivot, as in QEMU, so it shares what they share.
    const write = this.type === 'commit' ? Perm.WRITE_UNCHANGED : Perm.WRITE;
    const writer = this.openBackend(target, write, PERM_ALL);
    await this.initialDirty();
    for (;;) {
      if (this.dirty.count > 0) await this.iteration(reader, writer);
      // Nothing dirty right after a copy: the target equals the source at this instant. (Checked
      // before yielding: a guest writing every turn would otherwise always be a step ahead.)
      if (this.dirty.count === 0 && this.status === 'running') this.setReady();
      // Idle: mirror_run sleeps a slice; a guest write (watcher), complete or cancel wakes it.
      if (this.dirty.count === 0 && !this.completing && !this.cancelRequested) await this.sleep(SLICE_MS);
      else await this.pausePoint();
      if (this.completing || (this.cancelRequested && this.status === 'ready')) return;
    }
  }

  /** mirror_exit_common on success: the last dirty chunks with the source drained, then the pivot. */
  protected override async prepare(): Promise<void> {
    if (this.cancelRequested) return;
    const { source, target } = this.opts;
    const graph = this.registry.graph;
    await graph.drained([source, target], async () => {
      // The job's backends are drained too: the last copies go to the nodes directly.
      for (
        let run = this.dirty.next(0, this.opts.bufSize);
        run;
        run = this.dirty.next(0, this.opts.bufSize)
      ) {
        const [offset, bytes] = run;
        this.dirty.clear(offset, bytes);
        const buf = new Uint8Array(bytes);
        await source.read(offset, buf);
        await target.write(offset, buf);
        this.current += bytes;
      }
      this.updateTotal();
      await this.closeBackends();
      // Active commit too: the committed layers stay above base, unused (mirror_exit_common).
      await graph.replaceNode(source, target);
      this.keepWritable(target);
    });
  }

  protected override async clean(): Promise<void> {
    this.unwatch();
    await super.clean();
  }

  /**
   * mirror_iteration: copies up to buf-size of dirty runs at once, in parallel (QEMU keeps up to
   * 16 copies in flight). One run per turn would not keep up with a guest whose writes each
   * dirty a chunk elsewhere: the mirror would never get ready.
   */
  private async iteration(reader: BlockBackend, writer: BlockBackend): Promise<void> {
    const runs: [number, number][] = [];
    for (let room = this.opts.bufSize; room > 0 && runs.length < MAX_IN_FLIGHT;) {
      const run = this.dirty.next(this.cursor, room);
      if (!run) break;
      this.dirty.clear(...run);
      runs.push(run);
      room -= run[1];
      this.cursor = run[0] + run[1];
    }
    const failures = await Promise.all(
      runs.map(([offset, bytes]) =>
        this.inFlight.run(offset, offset + bytes, () => this.copy(reader, writer, offset, bytes)),
      ),
    );
    this.updateTotal();
    // Every failure is reported (BLOCK_JOB_ERROR); the first `report` fails the job.
    const actions = failures.flatMap((f) => (f ? [[f, this.errorActionFor(f)] as const] : []));
    const fatal = actions.find(([, action]) => action === 'report');
    if (fatal) throw fatal[0].err;
    await this.throttle(runs.reduce((sum, [, bytes]) => sum + bytes, 0));
  }

  /** Copies one dirty run (cleared by the caller); a failure marks it dirty again and is returned. */
  private async copy(
    reader: BlockBackend,
    writer: BlockBackend,
    offset: number,
    bytes: number,
  ): Promise<CopyFailure | undefined> {
    const failure = await this.copyRange(reader, writer, offset, bytes);
    if (failure) this.dirty.set(offset, bytes);
    else this.current += bytes;
    return failure;
  }

  private errorActionFor({ isRead, err }: CopyFailure): string {
    const policy = (isRead ? this.opts.onSourceError : this.opts.onTargetError) ?? 'report';
    return this.errorAction(policy, isRead, err);
  }

  /**
   * A guest write on the source. In the background mode it marks its chunks dirty once settled.
   * In write-blocking mode (do_sync_target_write) it also writes its data to the target before
   * it completes and cleans the chunks it covers entirely: the dirty chunks can only shrink, so
   * the mirror converges however fast the guest writes. Copies and guest writes of the same
   * bytes never overlap (mirror_wait_on_conflicts), so none lands stale on the target.
   */
  private guestWrite(req: WriteRequest, perform: () => Promise<void>): Promise<void> {
    return this.inFlight.run(req.offset, req.offset + req.bytes, async () => {
      try {
        await perform();
        if (this.opts.copyMode === 'write-blocking' && req.data)
          await this.syncTargetWrite(req.offset, req.data);
        else this.dirty.set(req.offset, req.bytes);
      } catch (err) {
        this.dirty.set(req.offset, req.bytes);
        throw err;
      } finally {
        this.updateTotal();
        this.enter();
      }
    });
  }

  /**
   * Writes a guest write's data to the target node itself: the job's own backend may be drained
   * while the guest request (which the drain waits for) is still running. The target now holds
   * these bytes: chunks the write covers entirely are clean, a partly covered chunk stays as it
   * was (QEMU disables the job's bitmap in this mode). A failure leaves the bytes dirty for the
   * background copy, which reports it by the on-target-error policy.
   */
  private async syncTargetWrite(offset: number, data: Uint8Array): Promise<void> {
    const g = this.opts.granularity;
    const start = Math.ceil(offset / g) * g;
    const end = Math.floor((offset + data.length) / g) * g;
    try {
      await this.opts.target.write(offset, data);
    } catch {
      this.dirty.set(offset, data.length);
      return;
    }
    if (start < end) this.dirty.clear(start, end - start);
    this.current += data.length;
  }

  /** mirror_dirty_init: what is dirty before any guest write. */
  private async initialDirty(): Promise<void> {
    const { source, sync } = this.opts;
    const len = source.length();
    if (sync === 'full') this.dirty.set(0, len);
    if (sync === 'top' || typeof sync === 'object') {
      const below = sync === 'top' ? 1 : sync.baseDepth;
      for (let offset = 0; offset < len;) {
        const { bytes, copy } = await allocatedBetween(source, offset, len - offset, 0, below);
        if (copy) this.dirty.set(offset, bytes);
        offset += bytes;
      }
    }
    this.updateTotal();
  }

  /** job_progress_set_remaining: total is what was copied plus what is dirty now. */
  private updateTotal(): void {
    this.total = this.current + this.dirty.count;
  }
}
