/**
 * The disk object v86 talks to for `hda`/`hdb` (DESIGN.md §5 lists the members v86 uses and what
 * breaks without each). Every access goes to a BlockBackend and so through the graph; the only
 * data kept here is a copy of the one range v86 asks to cache (the MBR, for CHS geometry).
 *
 * Ordering: v86's PIO path hands `set` a view of a buffer it reuses and then reads the same
 * sectors without waiting for the write. `set` therefore copies the data before returning, and
 * relies on the BlockBackend ordering conflicting requests in submission (call) order.
 *
 * Errors: v86's callbacks cannot carry an error. The werror/rerror policies of the BlockBackend
 * decide first whether an error reaches here at all (`stop` parks the request until `cont`,
 * `ignore` completes it); one that does goes to `failurePath`, which the device model owning the
 * disk sets (ide-hooks.ts: an ATA or ATAPI error the guest sees), and the request's callback is
 * never called. Without a device model the error is only reported to `onError`.
 */

/** What the adapter needs of a BlockBackend: byte-granular I/O, ordered by submission. */
export interface DiskBackend {
  length(): number;
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

export type DiskOp = 'read' | 'write' | 'flush';

/**
 * The device model's error path: called when a request is submitted (so it can note which
 * command the request belongs to), it returns what to call if that request fails.
 */
export type FailurePath = (op: DiskOp) => (err: unknown) => void;

/** Counters of what v86 asked for, for `boot --stats` and the tests. */
export interface V86DiskStats {
  gets: number;
  getBytes: number;
  sets: number;
  setBytes: number;
}

export type DiskErrorHandler = (op: DiskOp, offset: number, bytes: number, err: unknown) => void;

export class V86Disk {
  /** Read once: v86 sizes the IDE disk from it at construction. */
  readonly byteLength: number;
  /** Set by v86 before it calls `load`. */
  onload: ((event: object) => void) | undefined;
  readonly stats: V86DiskStats = { gets: 0, getBytes: 0, sets: 0, setBytes: 0 };
  /** Set by the device model that owns the disk; by default a failure only reaches `onError`. */
  failurePath: FailurePath = () => () => {};
  private cached: { start: number; data: Uint8Array } | undefined;

  constructor(
    private readonly backend: DiskBackend,
    private readonly onError: DiskErrorHandler = logError,
  ) {
    this.byteLength = backend.length();
  }

  /** Nothing to load: the data stays in the graph. v86 waits for `onload`. */
  load(): void {
    this.onload?.({});
  }

  /**
   * Reads `len` bytes at `start` and passes them to `cb` (a fresh array v86 may keep), unless
   * `signal` was aborted meanwhile (IDE reset).
   */
  get(start: number, len: number, cb: (data: Uint8Array) => void, opts?: { signal?: AbortSignal }): void {
    this.stats.gets++;
    this.stats.getBytes += len;
    const dst = new Uint8Array(len);
    const fail = this.failurePath('read');
    this.backend.read(start, dst).then(
      () => {
        if (!opts?.signal?.aborted) cb(dst);
      },
      (err: unknown) => {
        this.onError('read', start, len, err);
        if (!opts?.signal?.aborted) fail(err);
      },
    );
  }

  /** Like `get`, and keeps a copy for `get_from_cache` (v86 does this for the MBR before boot). */
  get_and_cache(start: number, len: number, cb: (data: Uint8Array) => void): void {
    this.get(start, len, (data) => {
      this.cached = { start, data: data.slice() };
      cb(data);
    });
  }

  /** Synchronous read from the cached range; `undefined` (allowed by v86) when not cached. */
  get_from_cache(start: number, len: number): Uint8Array | undefined {
    const c = this.cached;
    if (!c || start < c.start || start + len > c.start + c.data.length) return undefined;
    return c.data.slice(start - c.start, start - c.start + len);
  }

  /**
   * Writes `data` at `start`; `cb` runs once the BlockBackend completed the write (DMA waits for
   * it, PIO does not). `data` is copied first: PIO reuses its buffer as soon as we return.
   */
  set(start: number, data: Uint8Array, cb?: () => void): void {
    const copy = data.slice();
    this.stats.sets++;
    this.stats.setBytes += copy.length;
    this.patchCache(start, copy);
    const fail = this.failurePath('write');
    // The length is taken now: a backend in a worker may transfer (detach) the buffer.
    const bytes = copy.length;
    this.backend.write(start, copy).then(
      () => cb?.(),
      (err: unknown) => {
        this.onError('write', start, bytes, err);
        fail(err);
      },
    );
  }

  /** Flushes the backend (ATA FLUSH CACHE, which v86 itself never passes on: ide-hooks.ts). */
  flush(cb: () => void): void {
    const fail = this.failurePath('flush');
    this.backend.flush().then(cb, (err: unknown) => {
      this.onError('flush', 0, 0, err);
      fail(err);
    });
  }

  /** The disk contents live in the graph, not in v86's saved state: nothing to save. */
  get_state(): unknown[] {
    return [];
  }

  set_state(): void {}

  /** Keeps the cached range equal to the disk when the guest writes over it (MBR updates). */
  private patchCache(start: number, data: Uint8Array): void {
    const c = this.cached;
    if (!c) return;
    const from = Math.max(start, c.start);
    const to = Math.min(start + data.length, c.start + c.data.length);
    if (from < to) c.data.set(data.subarray(from - start, to - start), from - c.start);
  }
}

function logError(op: DiskOp, offset: number, bytes: number, err: unknown): void {
  console.error(`v86 disk: ${op} of ${bytes} bytes at ${offset} failed: ${(err as Error).message ?? err}`);
}
