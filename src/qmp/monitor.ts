/**
 * The QMP server side shared by all connections: the block graph the commands act on, the
 * command table, and the event fan-out (every graph event goes to every negotiated session,
 * stamped with the wall-clock time as QEMU's monitor_qapi_event_emit does).
 */
import type { EventSink } from '../block/driver.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { COMMANDS } from './commands/index.ts';
import type { QmpCommand } from './commands/types.ts';
import { QmpSession } from './session.ts';
import { eventMessage, realTimeUs } from './wire.ts';

export interface MonitorOptions {
  /** Called after the response to `quit` has been sent. */
  readonly onQuit?: () => void;
  readonly commands?: ReadonlyMap<string, QmpCommand>;
}

export class QmpMonitor {
  readonly graph: BlockGraph;
  readonly commands: ReadonlyMap<string, QmpCommand>;
  private readonly sessions = new Set<QmpSession>();

  /** `makeGraph` builds the graph with this monitor's event sink, so its events reach clients. */
  constructor(
    makeGraph: (emit: EventSink) => BlockGraph,
    private readonly options: MonitorOptions = {},
  ) {
    this.graph = makeGraph((event, data) => this.broadcast(event, data));
    this.commands = options.commands ?? COMMANDS;
  }

  /** A new connection; it greets at once through `send`. */
  connect(send: (text: string) => void, opts: { pretty?: boolean } = {}): QmpSession {
    const session = new QmpSession(this, send, opts.pretty);
    this.sessions.add(session);
    return session;
  }

  broadcast(event: string, data: Record<string, unknown>): void {
    const message = eventMessage(event, data, realTimeUs());
    for (const session of this.sessions) session.event(message);
  }

  quit(): void {
    this.options.onQuit?.();
  }
}
