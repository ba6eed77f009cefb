/**
 * Intermediate block-commit (QEMU's block/commit.c): copies into `base` the data the layers from
 * `top` down to just above `base` hold, then the overlay of `top` takes `base` as its backing
 * file and the committed layers drop out of the chain. Nobody writes to those layers (they are
 * backing files), so no write tracking is needed; committing the active layer is a mirror
 * (mirror.ts).
 */
import type { BlockNode } from '../block/node.ts';
import { Perm, PERM_ALL } from '../block/types.ts';
import { BlockJob, type BlockJobOptions, type OnError } from './block-job.ts';
import { allocatedBetween, depthBelow } from './chain.ts';
import type { JobRegistry } from './registry.ts';

/** COMMIT_BUFFER_SIZE in block/commit.c. */
const CHUNK = 512 * 1024;

export interface CommitOptions extends BlockJobOptions {
  /** The highest layer committed; `overlay` has it as its backing file. */
  readonly top: BlockNode;
  readonly overlay: BlockNode;
  readonly base: BlockNode;
  /** The backing file name recorded in the overlay's image (default: base's filename). */
  readonly backingFile?: string;
  readonly onError?: OnError;
}

export class CommitJob extends BlockJob {
  readonly type = 'commit';

  constructor(
    registry: JobRegistry,
    private readonly opts: CommitOptions,
  ) {
    super(registry, opts);
  }

  protected async run(): Promise<void> {
    const { top, base } = this.opts;
    const reader = this.openBackend(top, Perm.CONSISTENT_READ, PERM_ALL);
    // Writing a backing file changes what the layers between read: they are dropped afterwards.
    const writer = this.openBackend(base, Perm.WRITE_UNCHANGED, PERM_ALL);
    const baseDepth = depthBelow(top, base)!;
    this.total = top.length();
    for (let offset = 0; offset < this.total;) {
      await this.pausePoint();
      const n = Math.min(CHUNK, this.total - offset);
      const { bytes, copy } = await allocatedBetween(top, offset, n, 0, baseDepth);
      const failure = copy ? await this.copyRange(reader, writer, offset, bytes) : undefined;
      if (failure) {
        const action = this.errorAction(this.opts.onError ?? 'report', failure.isRead, failure.err);
        if (action === 'report') throw failure.err;
        if (action === 'stop') continue;
      }
      offset += bytes;
      this.current += bytes;
      await this.throttle(copy ? bytes : 0);
    }
  }

  /** commit_prepare: the overlay's backing becomes base, in the graph and in its image. */
  protected override async prepare(): Promise<void> {
    const { overlay, base } = this.opts;
    await this.registry.graph.setChild(overlay, 'backing', base);
    const name = this.opts.backingFile ?? base.filename();
    await overlay.ops.changeBackingFile?.(name, base.driver.name);
  }
}
