/**
 * The page's QMP connection inside the worker: one QmpSession of the monitor, spoken to in QMP's
 * own JSON, so a command from the page gets exactly the checks, texts and events a QMP socket
 * client would (qmp/session.ts). The connection is negotiated at once: the page never sees the
 * capabilities mode, and events flow from the start.
 */
import { genericError, QmpError, type QmpErrorClass } from '../block/errors.ts';
import type { QmpMonitor } from '../qmp/monitor.ts';
import type { QmpSession } from '../qmp/session.ts';

/** A QMP event as it appears on the wire. */
export interface QmpEvent {
  readonly event: string;
  /** Absent for events without data (STOP, RESUME), as in QEMU. */
  readonly data?: Record<string, unknown>;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class QmpChannel {
  private readonly session: QmpSession;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private nextId = 0;
  private quit = false;

  constructor(monitor: QmpMonitor) {
    this.session = monitor.connect((text) => this.receive(JSON.parse(text) as Record<string, unknown>));
    void this.execute('qmp_capabilities');
  }

  /**
   * Runs `command`: resolves with its `return` value, or rejects with a QmpError carrying the
   * response's class and text. Commands run one at a time, in call order.
   */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    // After `quit` QEMU closes the connection; a request would never be answered.
    if (this.quit) return Promise.reject(genericError('The QMP monitor has quit'));
    const id = this.nextId++;
    const request = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.session.feed(JSON.stringify(request));
    });
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  listen(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The monitor ran `quit`: later requests are refused instead of waiting forever. */
  close(): void {
    this.quit = true;
  }

  private receive(message: Record<string, unknown>): void {
    if ('event' in message) {
      for (const listener of this.listeners) listener(message as unknown as QmpEvent);
      return;
    }
    const pending = this.pending.get(message.id as number);
    if (!pending) return; // the greeting
    this.pending.delete(message.id as number);
    const error = message.error as { class: QmpErrorClass; desc: string } | undefined;
    if (error) pending.reject(new QmpError(error.class, error.desc));
    else pending.resolve(message.return);
  }
}
