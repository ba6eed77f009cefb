/**
 * The nbd driver's connection that comes back (QEMU block/nbd.c, `reconnect-delay`): when the
 * connection drops, it is re-established in the background. For `reconnect-delay` seconds
 * after the drop, requests — new ones and those that were in flight — wait for the new
 * connection and are then sent (again); after that, or with a delay of 0, a request tries one
 * connection attempt of its own and fails with EIO if that fails (QEMU's
 * NBD_CLIENT_CONNECTING_NOWAIT). The background retries start after 100 ms and double up to
 * 2 s (QEMU waits 1 s to 16 s; shorter here so a restarted server is found quickly).
 */
import { ioError } from '../block/errors.ts';
import { ConnectionLost } from './channel.ts';
import type { NbdClientSession } from './client.ts';

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;

export class ReconnectingClient {
  private session: NbdClientSession | null;
  private lostAt = 0;
  private closing = false;
  private attempt: Promise<NbdClientSession> | null = null;
  private looping = false;
  private readonly waiters = new Set<() => void>();

  /**
   * `connect` makes a new negotiated session (and throws if it cannot); `first` is the one
   * open made. `delayMs` is reconnect-delay in milliseconds.
   */
  constructor(
    private readonly connect: () => Promise<NbdClientSession>,
    first: NbdClientSession,
    private readonly delayMs: number,
  ) {
    this.session = first;
    this.watch(first);
  }

  /** Runs `op` on a live session, again on a new one while the reconnect window is open. */
  async run<T>(op: (s: NbdClientSession) => Promise<T>): Promise<T> {
    for (;;) {
      const s = await this.current();
      try {
        return await op(s);
      } catch (err) {
        if (!(err instanceof ConnectionLost)) throw err;
        if (!this.inWindow()) throw ioError('EIO');
      }
    }
  }

  /** Disconnects for good; requests from now on fail. */
  close(): void {
    this.closing = true;
    this.session?.disconnect();
    this.session = null;
    this.wake();
  }

  /** The live session: waits for one inside the window, else makes one attempt. */
  private async current(): Promise<NbdClientSession> {
    for (;;) {
      if (this.session) return this.session;
      if (this.closing) throw ioError('EIO');
      if (!this.inWindow()) {
        try {
          return await this.reconnect();
        } catch {
          throw ioError('EIO');
        }
      }
      await this.waitForChange(this.lostAt + this.delayMs - Date.now());
    }
  }

  private inWindow(): boolean {
    return !this.closing && this.delayMs > 0 && Date.now() - this.lostAt < this.delayMs;
  }

  private watch(s: NbdClientSession): void {
    void s.ended.then(() => {
      if (this.session !== s) return;
      this.session = null;
      this.lostAt = Date.now();
      if (this.delayMs > 0) void this.retryLoop();
    });
  }

  /** Background attempts with a growing pause, until connected or closed. */
  private async retryLoop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    let pause = FIRST_RETRY_MS;
    while (!this.session && !this.closing) {
      try {
        await this.reconnect();
      } catch {
        await sleep(pause);
        pause = Math.min(pause * 2, MAX_RETRY_MS);
      }
    }
    this.looping = false;
  }

  /** One connection attempt, shared by everyone asking at the same time. */
  private reconnect(): Promise<NbdClientSession> {
    this.attempt ??= this.connect()
      .then((s) => {
        if (this.closing) {
          s.disconnect();
          throw ioError('EIO');
        }
        this.session = s;
        this.watch(s);
        this.wake();
        return s;
      })
      .finally(() => (this.attempt = null));
    return this.attempt;
  }

  private waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
