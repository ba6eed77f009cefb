/**
 * One QMP connection (QEMU's MonitorQMP): it greets, reads JSON messages from a byte stream,
 * runs commands one at a time in arrival order, and writes responses and events. Until the
 * client sends qmp_capabilities only that command exists, and events are not sent. The request
 * checks and their texts follow qapi/qmp-dispatch.c and monitor/qmp.c in QEMU 7.2.
 */
import { QmpError, genericError } from '../block/errors.ts';
import { checkArgs } from './args.ts';
import type { QmpCommand, QmpContext } from './commands/types.ts';
import { JsonStream, type JsonMessage } from './json-stream.ts';
import { errorMessage, greeting, returnMessage, serialize, type QmpErrorBody } from './wire.ts';
import type { QmpMonitor } from './monitor.ts';

export class QmpSession {
  private negotiated = false;
  private oob = false;
  private quitting = false;
  private readonly input = new JsonStream((message) => this.enqueue(message));
  private queue: Promise<void> = Promise.resolve();

  /** `send` gets each outgoing message as one serialized text, without a line ending. */
  constructor(
    private readonly monitor: QmpMonitor,
    private readonly send: (text: string) => void,
    private readonly pretty = false,
  ) {
    this.write(greeting());
  }

  /** Input bytes as they arrive (decoded text; any chunking). */
  feed(chunk: string): void {
    this.input.feed(chunk);
  }

  /** Resolves when every message received so far has been answered. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Sends an event, unless the client is still negotiating capabilities. */
  event(message: Record<string, unknown>): void {
    if (this.negotiated) this.write(message);
  }

  /** qmp_capabilities: leave negotiation mode; a second call is refused like QEMU does. */
  negotiate(enable: readonly string[]): void {
    if (this.negotiated) {
      throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
    }
    this.negotiated = true;
    this.oob = enable.includes('oob');
  }

  private enqueue(message: JsonMessage): void {
    this.queue = this.queue.then(() => this.handle(message));
  }

  private async handle(message: JsonMessage): Promise<void> {
    // Nothing after quit is answered: QEMU leaves its main loop.
    if (this.quitting) return;
    if ('error' in message)
      return this.write(errorMessage({ class: 'GenericError', desc: message.error }, undefined));
    const request = message.value;
    const id = isDict(request) ? request.id : undefined;
    try {
      this.write(returnMessage(await this.dispatch(request), id));
    } catch (err) {
      this.write(errorMessage(this.errorBody(err), id));
    }
    if (this.quitting) this.monitor.quit();
  }

  private async dispatch(request: unknown): Promise<unknown> {
    if (!isDict(request)) throw genericError('QMP input must be a JSON object');
    const { name, oob } = this.checkRequest(request);
    const command = this.lookup(name);
    if (oob) throw genericError(`The command ${name} does not support OOB`);
    const args = (request.arguments ?? {}) as Record<string, unknown>;
    const checked = command.args === 'boxed' ? { ...args } : checkArgs(command.args, args);
    return command.run(this.context(), checked);
  }

  /** qmp_dispatch_check_obj: the request's own members, before any command is looked up. */
  private checkRequest(request: Record<string, unknown>): { name: string; oob: boolean } {
    let execKey: string | undefined;
    for (const [key, value] of Object.entries(request)) {
      if (key === 'execute' || (key === 'exec-oob' && this.oob)) {
        if (typeof value !== 'string') throw genericError(`QMP input member '${key}' must be a string`);
        if (execKey) throw genericError(`QMP input member '${key}' clashes with '${execKey}'`);
        execKey = key;
      } else if (key === 'arguments') {
        if (!isDict(value)) throw genericError("QMP input member 'arguments' must be an object");
      } else if (key !== 'id') {
        throw genericError(`QMP input member '${key}' is unexpected`);
      }
    }
    if (!execKey) throw genericError("QMP input lacks member 'execute'");
    return { name: request[execKey] as string, oob: execKey === 'exec-oob' };
  }

  /** Before negotiation only qmp_capabilities exists (qmp_cap_negotiation_commands). */
  private lookup(name: string): QmpCommand {
    const command = this.monitor.commands.get(name);
    if (command && (this.negotiated || name === 'qmp_capabilities')) return command;
    throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
  }

  private context(): QmpContext {
    return {
      graph: this.monitor.graph,
      session: this,
      quit: () => {
        this.quitting = true;
      },
    };
  }

  private errorBody(err: unknown): QmpErrorBody {
    if (!(err instanceof QmpError)) {
      // Not a QEMU error but a bug of ours: answer, and keep the stack where a developer looks.
      console.error(err);
      return { class: 'GenericError', desc: err instanceof Error ? err.message : String(err) };
    }
    const body = err.toQmp();
    if (!this.negotiated && body.class === 'CommandNotFound') {
      // monitor_qmp_dispatch replaces the text to say what the client has to do first.
      return { class: body.class, desc: "Expecting capabilities negotiation with 'qmp_capabilities'" };
    }
    return body;
  }

  private write(message: Record<string, unknown>): void {
    this.send(serialize(message, this.pretty));
  }
}

function isDict(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
