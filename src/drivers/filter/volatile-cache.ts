/**
 * x-volatile-cache: a crash-simulation filter (blockgraph's own and experimental, hence the `x-`
 * that QEMU gives such things). It models a disk with a volatile write cache in front of its
 * `file` child: writes are acknowledged at once but reach the child only when a flush completes.
 *
 * Every write-type request since the last completed flush is kept in a journal, as the full
 * 512-byte images of the sectors it touched (partial sectors merged with what the cache held then,
 * as a page cache would); reads see the journal (read-your-writes). `flush` replays the journal
 * onto the child in issue order and flushes the child. A *crash* (crashVolatileCache, or one armed
 * with armVolatileCacheCrash to strike in the middle of a request sequence) replays only a random
 * subset instead: each journalled request is kept whole, dropped, or torn (each of its sectors
 * kept or dropped independently); the rest is lost and every later request fails with EIO.
 *
 * Zero writes and discards are journalled as writes of zeros (discarded bytes may read as anything,
 * zeros included). Requests are served one at a time, so the journal order is the issue order.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError, ioError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { childRefused, FILTER_CAPABILITIES, requiredChild } from './filter-base.ts';

const SECTOR = 512;
const ZERO_SECTOR = new Uint8Array(SECTOR);

/** One journalled request: sector images from sector `first` on, or a resize. */
type JournalEntry =
  | {
      readonly kind: 'write';
      readonly first: number;
      readonly images: Uint8Array[];
      /** The node's length after the request: the last image is cut there. */
      readonly limit: number;
      /** Forced unit access: durable on completion, so a crash always keeps it. */
      readonly fua: boolean;
    }
  | { readonly kind: 'truncate'; readonly bytes: number };

/** Decides, at a commit, whether sector `index` of journal entry `entry` reaches the child. */
type KeepFn = (entry: number, index: number) => boolean;

/** What a crash did with the journal. */
export interface CrashSummary {
  readonly requests: number;
  readonly kept: number;
  readonly dropped: number;
  readonly torn: number;
}

/** mulberry32: the crash outcome is a function of the seed alone. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class VolatileCache {
  /** Current content of every sector written since the last commit (images are never mutated). */
  private readonly cache = new Map<number, Uint8Array>();
  private journal: JournalEntry[] = [];
  private len: number;
  /** Child bytes from here on read as zeros: a journalled shrink cut them off. */
  private hideFrom = Infinity;
  crashed = false;
  private armed?: { seed: number; countdown: number };
  /** Write-type requests and flushes received since open. */
  requests = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(public child: BlockNode) {
    this.len = child.length();
  }

  length(): number {
    return this.len;
  }

  /** Runs `op` after every earlier request; fails once the simulated machine has crashed. */
  serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      if (this.crashed) throw ioError('EIO', 'x-volatile-cache: the simulated machine has crashed');
      return op();
    });
    this.tail = run.catch(() => {});
    return run;
  }

  /** A write-type request or flush: the armed crash may strike instead of it. */
  mutating(op: () => Promise<void>): Promise<void> {
    return this.serial(async () => {
      this.requests++;
      if (this.armed && --this.armed.countdown <= 0) {
        await this.crashNow(this.armed.seed);
        throw ioError('EIO', 'x-volatile-cache: the simulated machine has crashed');
      }
      await op();
    });
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    await this.child.read(offset, dst);
    if (this.hideFrom < offset + dst.length) dst.fill(0, Math.max(0, this.hideFrom - offset));
    const end = offset + dst.length;
    for (const s of this.cachedSectors(offset, dst.length)) {
      const from = Math.max(offset, s * SECTOR);
      const to = Math.min(end, (s + 1) * SECTOR);
      const img = this.cache.get(s) as Uint8Array;
      dst.set(img.subarray(from - s * SECTOR, to - s * SECTOR), from - offset);
    }
  }

  /** Journals a write of `src` (or of zeros when null) over [offset, offset+bytes). */
  async put(offset: number, bytes: number, src: Uint8Array | null, fua = false): Promise<void> {
    if (bytes === 0) return;
    const first = Math.floor(offset / SECTOR);
    const end = offset + bytes;
    const copy = src?.slice();
    const images: Uint8Array[] = [];
    for (let s = first; s * SECTOR < end; s++) {
      const from = Math.max(offset, s * SECTOR);
      const to = Math.min(end, (s + 1) * SECTOR);
      let img: Uint8Array;
      if (to - from === SECTOR) {
        img = copy ? copy.subarray(from - offset, to - offset) : ZERO_SECTOR;
      } else {
        img = await this.sector(s);
        if (copy) img.set(copy.subarray(from - offset, to - offset), from - s * SECTOR);
        else img.fill(0, from - s * SECTOR, to - s * SECTOR);
      }
      images.push(img);
      this.cache.set(s, img);
    }
    this.len = Math.max(this.len, end);
    this.journal.push({ kind: 'write', first, images, limit: this.len, fua });
  }

  truncate(bytes: number): Promise<void> {
    if (bytes < this.len) {
      for (const s of this.cachedSectors(bytes, this.len - bytes)) {
        const cut = bytes - s * SECTOR;
        if (cut <= 0) this.cache.delete(s);
        else this.cache.set(s, (this.cache.get(s) as Uint8Array).slice().fill(0, cut));
      }
      this.hideFrom = Math.min(this.hideFrom, bytes);
    }
    this.len = bytes;
    this.journal.push({ kind: 'truncate', bytes });
    return Promise.resolve();
  }

  async flush(): Promise<void> {
    await this.commit(() => true);
    await this.child.flush();
  }

  /**
   * The crash: each journalled request is kept (p=1/3), dropped (1/3) or torn (1/3: each sector
   * kept with p=1/2), FUA writes always kept; what is kept reaches the child, in issue order, and
   * the child is flushed.
   */
  async crashNow(seed: number): Promise<CrashSummary> {
    const rnd = prng(seed);
    const fate = this.journal.map(() => Math.floor(rnd() * 3));
    const torn = new Map<string, boolean>();
    const keep: KeepFn = (entry, index) => {
      const e = this.journal[entry];
      if (e?.kind === 'write' && e.fua) return true;
      if (fate[entry] !== 2) return fate[entry] === 0;
      const key = `${entry}:${index}`;
      if (!torn.has(key)) torn.set(key, rnd() < 0.5);
      return torn.get(key) as boolean;
    };
    const summary = {
      requests: fate.length,
      kept: fate.filter((f) => f === 0).length,
      dropped: fate.filter((f) => f === 1).length,
      torn: fate.filter((f) => f === 2).length,
    };
    this.crashed = true;
    this.armed = undefined;
    await this.commit(keep);
    await this.child.flush();
    return summary;
  }

  arm(seed: number, afterRequests: number): void {
    this.armed = { seed, countdown: afterRequests };
  }

  /** A clean close writes the cache back, as QEMU's bdrv_close flushes. */
  async close(): Promise<void> {
    await this.tail;
    if (!this.crashed) await this.flush();
  }

  /** Replays the journal onto the child, only the sectors `keep` admits, then forgets it. */
  private async commit(keep: KeepFn): Promise<void> {
    for (const [i, entry] of this.journal.entries()) {
      if (entry.kind === 'truncate') {
        if (keep(i, 0)) await this.child.truncate(entry.bytes);
        continue;
      }
      for (let k = 0; k < entry.images.length;) {
        if (!keep(i, k)) {
          k++;
          continue;
        }
        let n = 1;
        while (k + n < entry.images.length && keep(i, k + n)) n++;
        await this.writeRun(entry, k, n);
        k += n;
      }
    }
    this.journal = [];
    this.cache.clear();
    this.hideFrom = Infinity;
    this.len = this.child.length();
  }

  /** Writes images [k, k+n) of `entry` to the child, not past the length the entry left. */
  private async writeRun(entry: JournalEntry & { kind: 'write' }, k: number, n: number): Promise<void> {
    const start = (entry.first + k) * SECTOR;
    const bytes = Math.min(n * SECTOR, entry.limit - start);
    if (bytes <= 0) return;
    const buf = new Uint8Array(n * SECTOR);
    for (let j = 0; j < n; j++) buf.set(entry.images[k + j] as Uint8Array, j * SECTOR);
    await this.child.write(start, buf.subarray(0, bytes));
  }

  /** A private copy of sector `s` as reads see it now. */
  private async sector(s: number): Promise<Uint8Array> {
    const img = new Uint8Array(SECTOR);
    await this.read(s * SECTOR, img);
    return img;
  }

  /** The cached sectors overlapping [offset, offset+bytes), by whichever walk is shorter. */
  private cachedSectors(offset: number, bytes: number): number[] {
    if (bytes <= 0 || this.cache.size === 0) return [];
    const first = Math.floor(offset / SECTOR);
    const last = Math.ceil((offset + bytes) / SECTOR) - 1;
    if (last - first + 1 > this.cache.size) {
      return [...this.cache.keys()].filter((s) => s >= first && s <= last);
    }
    const out: number[] = [];
    for (let s = first; s <= last; s++) if (this.cache.has(s)) out.push(s);
    return out;
  }
}

/** The cache behind each open x-volatile-cache node, by the ops object the node wraps. */
const CACHES = new WeakMap<BlockDriverOps, VolatileCache>();

function cacheOf(node: BlockNode): VolatileCache {
  const cache = CACHES.get(node.ops);
  if (!cache) throw genericError(`Node '${node.nodeName}' is not an x-volatile-cache node`);
  return cache;
}

/**
 * Crashes `node` (an x-volatile-cache node) after the requests before it finished: a random
 * subset, chosen by `seed`, of the writes since the last completed flush reaches the child.
 * On exit the child holds the post-crash state and every request on `node` fails with EIO.
 */
export function crashVolatileCache(node: BlockNode, seed: number): Promise<CrashSummary> {
  const cache = cacheOf(node);
  return cache.serial(() => cache.crashNow(seed));
}

/**
 * Arms a crash that strikes instead of the `afterRequests`-th write-type request or flush from
 * now on (1: the next one), as crashVolatileCache(node, seed) would; that request fails with EIO.
 */
export function armVolatileCacheCrash(node: BlockNode, seed: number, afterRequests: number): void {
  cacheOf(node).arm(seed, afterRequests);
}

/** Whether `node` (an x-volatile-cache node) has crashed. */
export function volatileCacheCrashed(node: BlockNode): boolean {
  return cacheOf(node).crashed;
}

/** How many write-type requests and flushes `node` (an x-volatile-cache node) has received. */
export function volatileCacheRequests(node: BlockNode): number {
  return cacheOf(node).requests;
}

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node behind the volatile cache' },
} as const;

export const volatileCacheDriver = {
  name: 'x-volatile-cache',
  kind: 'filter',
  options: OPTIONS,
  capabilities: FILTER_CAPABILITIES,

  async open(ctx): Promise<BlockDriverOps> {
    const cache = new VolatileCache(requiredChild(ctx, 'file'));
    const ops: BlockDriverOps = {
      length: () => cache.length(),
      read: (offset, dst) => cache.serial(() => cache.read(offset, dst)),
      write: (offset, src, flags) => cache.mutating(() => cache.put(offset, src.length, src, flags.fua)),
      writeZeroes: (offset, bytes) => cache.mutating(() => cache.put(offset, bytes, null)),
      discard: (offset, bytes) => cache.mutating(() => cache.put(offset, bytes, null)),
      flush: () => cache.mutating(() => cache.flush()),
      truncate: (bytes) => cache.mutating(() => cache.truncate(bytes)),
      close: () => cache.close(),
      // Nothing is in flight when the graph swaps the child; the journal stays, as a page cache
      // stays above a disk whose driver stack changed underneath.
      replaceChild: (name, node) => {
        if (name !== 'file' || !node) throw childRefused(name, 'an x-volatile-cache node');
        cache.child = node;
      },
    };
    CACHES.set(ops, cache);
    return ops;
  },
} as const satisfies BlockDriver;
