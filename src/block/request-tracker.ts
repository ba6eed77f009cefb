/**
 * In-flight tracking for one BlockBackend: ordering of conflicting requests, and drain.
 *
 * QEMU serialises only requests marked serialising (read-modify-write padding, copy-on-read) and
 * leaves other overlapping guest requests unordered. blockgraph is stricter, because v86's PIO
 * path issues a write and then a read of the same sectors without waiting for the write: every
 * request waits for the earlier requests it conflicts with, so the outcome always equals applying
 * the requests one by one in submission order. Two requests conflict when their byte ranges
 * (padded to the node's alignment, so two read-modify-writes of one block cannot interleave)
 * overlap and at least one of them writes; a flush waits for every earlier write. Reads never
 * wait for reads. Registration is synchronous, so submission order is call order.
 *
 * A request whose failure stopped the machine (werror/rerror=stop) is *parked*: it keeps its
 * place in the order, but drain does not wait for it, nor for requests queued behind it — the
 * machine is stopped, and a drained section (block_resize while stopped on ENOSPC) must be able
 * to run before `cont` retries it.
 */

export type RequestKind = 'read' | 'write' | 'flush';

type State = 'waiting' | 'running' | 'parked' | 'done';

export class TrackedRequest {
  state: State = 'waiting';
  /** Added while a drain was in progress: may not start before the drained section ends. */
  gated: boolean;
  /** Resolves when the request may start. */
  readonly ready: Promise<void>;
  private deps: TrackedRequest[];
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly tracker: RequestTracker,
    readonly kind: RequestKind,
    readonly start: number,
    readonly end: number,
    earlier: Iterable<TrackedRequest>,
    gate: Promise<void> | null,
  ) {
    this.deps = [...earlier].filter((older) => mustWait(this, older));
    this.gated = gate !== null;
    this.ready = Promise.all([...this.deps.map((d) => d.done), gate]).then(() => {
      this.state = 'running';
    });
  }

  /** The request failed and waits for `cont`; drain stops waiting for it. */
  park(): void {
    this.state = 'parked';
    this.tracker.changed();
  }

  /** `cont` retries the parked request. */
  unpark(): void {
    this.state = 'running';
  }

  /** The request completed (successfully or not); requests behind it may start. */
  finish(): void {
    this.state = 'done';
    this.deps = [];
    this.resolveDone();
    this.tracker.remove(this);
  }

  /** Blocked until `cont`: parked, or waiting (transitively) for a parked request. */
  stuck(): boolean {
    if (this.state === 'parked') return true;
    return this.state === 'waiting' && this.deps.some((d) => d.state !== 'done' && d.stuck());
  }
}

function mustWait(newer: TrackedRequest, older: TrackedRequest): boolean {
  if (newer.kind === 'flush') return older.kind === 'write';
  if (older.kind === 'flush') return false;
  if (newer.kind === 'read' && older.kind === 'read') return false;
  return newer.start < older.end && older.start < newer.end;
}

export class RequestTracker {
  private readonly live = new Set<TrackedRequest>();
  private drains = 0;
  private gate: Promise<void> | null = null;
  private openGate: () => void = () => {};
  private quiesced: (() => void)[] = [];

  /**
   * Registers a request in submission order; await its `ready` before doing the I/O. With
   * `queue` false it does not wait for a drained section to end (a drain then waits for it).
   */
  add(kind: RequestKind, start: number, end: number, queue = true): TrackedRequest {
    const req = new TrackedRequest(this, kind, start, end, this.live, queue ? this.gate : null);
    this.live.add(req);
    return req;
  }

  /** Requests registered and not finished, parked ones included. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Runs `section` once nothing is in flight (parked requests and those stuck behind them
   * excepted); requests added meanwhile wait until `section` settles. Sections may nest.
   */
  async drained<T>(section: () => Promise<T>): Promise<T> {
    if (this.drains++ === 0) this.gate = new Promise((resolve) => (this.openGate = resolve));
    try {
      await new Promise<void>((resolve) => {
        this.quiesced.push(resolve);
        this.changed();
      });
      return await section();
    } finally {
      if (--this.drains === 0) this.release();
    }
  }

  /** Re-evaluates pending drains after a request finished or parked. */
  changed(): void {
    if (this.quiesced.length === 0) return;
    for (const req of this.live) if (!req.gated && !req.stuck()) return;
    for (const resolve of this.quiesced.splice(0)) resolve();
  }

  remove(req: TrackedRequest): void {
    this.live.delete(req);
    this.changed();
  }

  private release(): void {
    for (const req of this.live) req.gated = false;
    this.gate = null;
    this.openGate();
  }
}
