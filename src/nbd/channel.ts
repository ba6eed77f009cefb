/**
 * A byte stream as NBD needs it, independent of what carries it (a TCP or Unix socket in Node,
 * binary WebSocket frames in a browser): ordered writes, and reads of exactly n bytes. A
 * transport pushes what arrives with `push` and reports the end with `end`; from then on every
 * read, pending or future, fails with ConnectionLost.
 */

/** The stream ended or broke; NBD requests in flight on it can only be retried elsewhere. */
export class ConnectionLost extends Error {
  constructor(message = 'Connection closed') {
    super(message);
    this.name = 'ConnectionLost';
  }
}

/** What a transport provides to its channel. */
export interface TransportSink {
  /** Sends bytes; the transport may keep `data` until sent, so callers never reuse it. */
  send(data: Uint8Array): void;
  /** Closes the connection; the transport then calls Channel.end. */
  close(): void;
}

export class Channel {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  private failure: ConnectionLost | null = null;
  private readonly endListeners: ((err: ConnectionLost) => void)[] = [];

  constructor(private readonly transport: TransportSink) {}

  /** Bytes received; resolves a pending read once it has enough. */
  push(chunk: Uint8Array): void {
    if (this.failure || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = null;
      w.resolve();
    }
  }

  /** The stream is over (closed by either side, or broken). Idempotent. */
  end(reason = 'Connection closed'): void {
    if (this.failure) return;
    this.failure = new ConnectionLost(reason);
    this.waiter?.reject(this.failure);
    this.waiter = null;
    for (const listener of this.endListeners.splice(0)) listener(this.failure);
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /** Calls `listener` once when the stream ends (at once if it has). */
  onEnd(listener: (err: ConnectionLost) => void): void {
    if (this.failure) listener(this.failure);
    else this.endListeners.push(listener);
  }

  /** Exactly `n` bytes, in a buffer the caller owns. One read at a time. */
  async read(n: number): Promise<Uint8Array> {
    if (this.buffered < n) await this.waitFor(n);
    return this.take(n);
  }

  /** Fills `dst` from the stream, copying each received piece once (large read payloads). */
  async readInto(dst: Uint8Array): Promise<void> {
    for (let done = 0; done < dst.length;) {
      if (this.buffered === 0) await this.waitFor(1);
      const c = this.chunks[0]!;
      const k = Math.min(c.length, dst.length - done);
      dst.set(k === c.length ? c : c.subarray(0, k), done);
      done += k;
      this.buffered -= k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
  }

  private waitFor(n: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiter = { n, resolve, reject }));
  }

  /** Sends each buffer in order; buffers must not change afterwards. */
  write(...parts: Uint8Array[]): void {
    if (this.failure) throw this.failure;
    for (const p of parts) if (p.length > 0) this.transport.send(p);
  }

  close(): void {
    this.transport.close();
    this.end();
  }

  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) return this.chunks.shift()!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    for (let done = 0; done < n;) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - done);
      out.set(c.subarray(0, k), done);
      done += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
