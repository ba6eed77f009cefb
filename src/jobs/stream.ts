/**
 * block-stream (QEMU's block/stream.c): copies into `top` the data its backing chain holds above
 * `base` (everything when there is no base), then makes `base` top's backing file — an image
 * over an HTTP base becomes self-contained while the guest keeps running on it.
 *
 * Guest writes to `top` race with the copy: a copy write must never land after a guest write to
 * the same bytes (QEMU serialises copy-on-read requests). A write watcher on `top` drops a copy
 * chunk whose bytes the guest started writing since the chunk was read (the chunk is redone),
 * and holds guest writes back while an overlapping copy write is in flight.
 */
import type { BlockBackend } from '../block/backend.ts';
import { Perm, PERM_ALL } from '../block/types.ts';
import type { BlockNode } from '../block/node.ts';
import { BlockJob, type BlockJobOptions, type OnError } from './block-job.ts';
import { allocatedBetween, backingOf, depthBelow } from './chain.ts';
import type { JobRegistry } from './registry.ts';
import { watchWrites } from './write-watch.ts';

/** STREAM_CHUNK in block/stream.c. */
const CHUNK = 512 * 1024;

export interface StreamOptions extends BlockJobOptions {
  readonly top: BlockNode;
  /** The node that stays below `top` (its new backing file); null streams the whole chain. */
  readonly base: BlockNode | null;
  /** The backing file name recorded in top's image (default: base's filename). */
  readonly backingFile?: string;
  readonly onError?: OnError;
}

interface Span {
  start: number;
  end: number;
}

export class StreamJob extends BlockJob {
  readonly type = 'stream';
  /** The chunk being copied, and whether a guest write touched it since it was read. */
  private chunk: (Span & { touched: boolean }) | null = null;
  /** The copy write in flight on top, which guest writes to its bytes wait for. */
  private copying: (Span & { done: Promise<void> }) | null = null;
  /** Guest writes in flight on top. */
  private readonly guestWrites = new Set<Span>();
  /** Tags the job's own writes, which the watcher lets through. */
  private readonly copyFlags = {};
  /** The first error an `ignore` policy skipped: the job still fails with it at the end. */
  private ignored: unknown;

  constructor(
    registry: JobRegistry,
    private readonly opts: StreamOptions,
  ) {
    super(registry, opts);
  }

  protected async run(): Promise<void> {
    const { top, base } = this.opts;
    const baseDepth = base ? depthBelow(top, base)! : Infinity;
    // Installed before the job has a backend: its drain would otherwise wait for the job itself.
    const unwatch = await watchWrites(this.registry.graph, top, (req, perform) =>
      req.flags === this.copyFlags ? perform() : this.guestWrite(req.offset, req.bytes, perform),
    );
    try {
      // The copy leaves top's content unchanged: write-unchanged, as QEMU's copy-on-read takes.
      const backend = this.openBackend(top, Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED, PERM_ALL);
      this.total = top.length();
      for (let offset = 0; offset < this.total;) {
        await this.pausePoint();
        const n = Math.min(CHUNK, this.total - offset);
        const { bytes, copy } = await allocatedBetween(top, offset, n, 1, baseDepth);
        if (copy && !(await this.copyChunk(backend, offset, bytes))) continue;
        offset += bytes;
        this.current += bytes;
        await this.throttle(copy ? bytes : 0);
      }
    } finally {
      unwatch();
    }
    if (this.ignored !== undefined) throw this.ignored;
  }

  /** The backing link drops to base, and the image records it (stream_prepare). */
  protected override async prepare(): Promise<void> {
    const { top, base } = this.opts;
    if (backingOf(top) === base) return;
    await this.registry.graph.setChild(top, 'backing', base);
    const name = base ? (this.opts.backingFile ?? base.filename()) : '';
    await top.ops.changeBackingFile?.(name, base && name ? base.driver.name : '');
  }

  /**
   * Copies one chunk through the backend. Returns false when it must be redone: a guest write
   * touched it meanwhile, or it failed under `stop` (redone once the job is resumed). A failure
   * under `ignore` skips the chunk; under `report` it is thrown.
   */
  private async copyChunk(backend: BlockBackend, offset: number, bytes: number): Promise<boolean> {
    const buf = new Uint8Array(bytes);
    const end = offset + bytes;
    const busy = [...this.guestWrites].some((w) => overlaps(w, { start: offset, end }));
    this.chunk = { start: offset, end, touched: busy };
    try {
      await backend.read(offset, buf);
      if (this.chunk.touched) return false;
      let finish!: () => void;
      this.copying = { start: offset, end: offset + bytes, done: new Promise((r) => (finish = r)) };
      try {
        await backend.write(offset, buf, this.copyFlags);
      } finally {
        this.copying = null;
        finish();
      }
      return true;
    } catch (err) {
      const action = this.errorAction(this.opts.onError ?? 'report', true, err);
      if (action === 'report') throw err;
      if (action === 'ignore') this.ignored ??= err;
      return action === 'ignore';
    } finally {
      this.chunk = null;
    }
  }

  /**
   * A guest write on top: it spoils the chunk being read, and waits for an overlapping copy
   * write in flight (which must not land after it).
   */
  private async guestWrite(offset: number, bytes: number, perform: () => Promise<void>): Promise<void> {
    const span = { start: offset, end: offset + bytes };
    this.guestWrites.add(span);
    try {
      const c = this.chunk;
      if (c && overlaps(c, span)) c.touched = true;
      const w = this.copying;
      if (w && overlaps(w, span)) await w.done;
      await perform();
    } finally {
      this.guestWrites.delete(span);
    }
  }
}

function overlaps(a: Span, b: Span): boolean {
  return a.start < b.end && b.start < a.end;
}
