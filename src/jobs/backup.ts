/**
 * blockdev-backup (QEMU 7.2 block/backup.c): a copy-before-write filter goes above the source,
 * so every guest write first saves the old clusters to the target; meanwhile the job copies the
 * remaining clusters in the background. The target ends up holding the source as it was when
 * the job started: everything (`full`), what the source layer itself holds (`top`), only what
 * guest writes were about to change (`none`, until cancelled), or the clusters dirty in a bitmap
 * (`bitmap`; `incremental` is bitmap with on-success).
 *
 * A sync bitmap is frozen while the job runs (busy, with a successor recording new writes) and
 * afterwards, by `bitmap-mode`: on-success — cleared if the job succeeded (only new writes stay
 * dirty), else restored; always — cleared either way, keeping the clusters not copied; never —
 * restored (with the new writes merged in).
 */
import { BdrvDirtyBitmap } from '../bitmaps/dirty-bitmap.ts';
import { abdicate, createSuccessor, reclaim } from '../bitmaps/node-bitmaps.ts';
import type { BlockNode } from '../block/node.ts';
import { CopyBeforeWrite } from '../drivers/filter/copy-before-write.ts';
import { BlockJob, type BlockJobOptions, type OnError } from './block-job.ts';
import type { JobRegistry } from './registry.ts';

export type BackupSync = 'full' | 'top' | 'none' | 'bitmap';
export type BitmapMode = 'on-success' | 'always' | 'never';

export interface BackupOptions extends BlockJobOptions {
  readonly source: BlockNode;
  readonly target: BlockNode;
  readonly sync: BackupSync;
  readonly bitmap?: BdrvDirtyBitmap;
  readonly bitmapMode?: BitmapMode;
  /** The cbw filter's node-name (filter-node-name); auto-named when absent. */
  readonly filterNodeName?: string;
  readonly onSourceError?: OnError;
  readonly onTargetError?: OnError;
}

/** How much the background copy does between pause points. */
const CHUNK = 1 << 20;

export class BackupJob extends BlockJob {
  readonly type = 'backup';
  private filter: BlockNode | undefined;

  constructor(
    registry: JobRegistry,
    private readonly opts: BackupOptions,
  ) {
    super(registry, opts);
  }

  /**
   * backup_job_create's graph half: the filter inserted above the source (bdrv_cbw_append) and
   * the bitmap frozen. Called before the job starts, so a refusal leaves nothing behind.
   */
  async insertFilter(): Promise<void> {
    const { source, target, bitmap } = this.opts;
    const graph = this.registry.graph;
    const filter = await graph.open({
      driver: 'copy-before-write',
      ...(this.opts.filterNodeName !== undefined && { 'node-name': this.opts.filterNodeName }),
      file: source.nodeName,
      target: target.nodeName,
    });
    try {
      await graph.replaceNode(source, filter);
    } catch (err) {
      await graph.release(filter);
      throw err;
    }
    this.filter = filter;
    // Its copies go through the filter: drains over the source or the target reach the job there.
    this.pauseOnDrains(filter);
    const cbw = filter.ops as CopyBeforeWrite;
    if (this.opts.sync === 'bitmap') cbw.restrictTo(bitmap!);
    if (bitmap) createSuccessor(source, bitmap);
    cbw.onCopied = (bytes) => (this.current += bytes);
  }

  protected async run(): Promise<void> {
    const cbw = this.filter!.ops as CopyBeforeWrite;
    if (this.opts.sync === 'top') await cbw.skipUnallocated();
    this.total = cbw.pending().reduce((n, e) => n + e.bytes, 0);
    if (this.opts.sync === 'none') {
      // Only guest writes copy: the job runs until it is cancelled.
      for (;;) await this.sleep(2 ** 31 - 1);
    }
    for (const run of cbw.pending()) {
      for (let at = run.offset; at < run.offset + run.bytes; at += CHUNK) {
        await this.pausePoint();
        const n = Math.min(CHUNK, run.offset + run.bytes - at);
        await this.copyRetrying(cbw, at, n);
        await this.throttle(n);
      }
    }
    await this.opts.target.flush();
  }

  /**
   * backup_loop's retry: a failed copy is reported (the job fails), or retried after `ignore`,
   * or after the pause `stop` puts the job in (job-resume), per on-source/target-error.
   */
  private async copyRetrying(cbw: CopyBeforeWrite, offset: number, bytes: number): Promise<void> {
    for (;;) {
      try {
        return await cbw.copy(offset, bytes);
      } catch (err) {
        const onTarget = cbw.failedOnTarget;
        const policy = (onTarget ? this.opts.onTargetError : this.opts.onSourceError) ?? 'report';
        if (this.errorAction(policy, !onTarget, err) === 'report') throw err;
        await this.pausePoint();
      }
    }
  }

  /** backup_commit: the bitmap's bits become what was written meanwhile (unless `never`). */
  protected override async prepare(): Promise<void> {
    this.settleBitmap(true);
  }

  /** backup_abort. */
  protected override async abort(): Promise<void> {
    this.settleBitmap(false);
  }

  /** backup_clean: the filter leaves the graph (bdrv_cbw_drop). */
  protected override async clean(): Promise<void> {
    const filter = this.filter;
    this.filter = undefined;
    if (filter) await this.registry.graph.replaceNode(filter, this.opts.source);
    await super.clean();
  }

  /** backup_cleanup_sync_bitmap. */
  private settleBitmap(success: boolean): void {
    const { source, bitmap, bitmapMode = 'on-success' } = this.opts;
    if (!bitmap || !bitmap.successor) return;
    const notCopied = new BdrvDirtyBitmap(undefined, bitmap.granularity, bitmap.size);
    for (const e of (this.filter?.ops as CopyBeforeWrite | undefined)?.pending() ?? []) {
      notCopied.set(e.offset, e.bytes);
    }
    if ((success || bitmapMode === 'always') && bitmapMode !== 'never') abdicate(source, bitmap);
    else reclaim(source, bitmap);
    if (!success && bitmapMode === 'always') bitmap.merge(notCopied);
  }
}
