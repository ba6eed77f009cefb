/**
 * An NBD server over the block graph, independent of sockets: it holds the exports (each a
 * BlockBackend over a node) and serves any connection handed to it — a Node socket
 * (listen.ts), or anything else that makes a Channel. Used by `blockgraph nbd` (one export)
 * and by the daemon's nbd-server-start / block-export-add (many).
 */
import type { BlockBackend } from '../block/backend.ts';
import type { Channel } from './channel.ts';
import { serverHandshake, type ExportView } from './server-handshake.ts';
import { ServerSession } from './server-session.ts';

export interface NbdExportOptions {
  readonly name: string;
  readonly description?: string;
  readonly writable: boolean;
  readonly blk: BlockBackend;
}

class NbdExport implements ExportView {
  /** Connections currently using this export. */
  readonly connections = new Set<Channel>();

  constructor(private readonly opts: NbdExportOptions) {}

  get name(): string {
    return this.opts.name;
  }
  get description(): string | undefined {
    return this.opts.description;
  }
  get writable(): boolean {
    return this.opts.writable;
  }
  get blk(): BlockBackend {
    return this.opts.blk;
  }
  size = (): number => this.opts.blk.length();
}

export class NbdServer {
  private readonly exports = new Map<string, NbdExport>();
  private readonly connections = new Set<Channel>();
  private connectionCount = 0;
  private readonly idleListeners: (() => void)[] = [];

  /** Adds an export; the caller checked that the name is free. */
  addExport(opts: NbdExportOptions): void {
    this.exports.set(opts.name, new NbdExport(opts));
  }

  hasExport(name: string): boolean {
    return this.exports.has(name);
  }

  /** Removes an export from the list; with `hard`, its clients are disconnected at once. */
  removeExport(name: string, hard: boolean): void {
    const exp = this.exports.get(name);
    this.exports.delete(name);
    if (hard) for (const ch of exp?.connections ?? []) ch.close();
  }

  /** How many clients use the export (its refcount beyond the server's own). */
  clientsOf(name: string): number {
    return this.exports.get(name)?.connections.size ?? 0;
  }

  /** Total connections ever accepted (qemu-nbd exits after the last one, unless -t). */
  get accepted(): number {
    return this.connectionCount;
  }

  get active(): number {
    return this.connections.size;
  }

  /** Serves one connection from handshake to disconnect. Never throws. */
  async serve(ch: Channel): Promise<void> {
    this.connectionCount++;
    this.connections.add(ch);
    try {
      const neg = await serverHandshake(
        ch,
        (name) => this.exports.get(name),
        () => this.exports.values(),
      );
      if (!neg) return;
      const exp = neg.exp as NbdExport;
      exp.connections.add(ch);
      try {
        await new ServerSession(ch, exp.blk, neg).run();
      } finally {
        exp.connections.delete(ch);
      }
    } catch {
      // A client that breaks the protocol during the handshake is simply dropped.
    } finally {
      ch.close();
      this.connections.delete(ch);
      if (this.connections.size === 0) for (const l of this.idleListeners.splice(0)) l();
    }
  }

  /** Resolves when no connection is open. */
  idle(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleListeners.push(resolve));
  }

  /** Disconnects every client (nbd-server-stop, process exit). */
  closeAll(): void {
    for (const ch of this.connections) ch.close();
  }
}
