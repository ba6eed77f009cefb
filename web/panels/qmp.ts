/**
 * The QMP console: a command as QMP JSON (`{"execute": "query-block"}`) or as `name {args}`
 * (`blockdev-del {"node-name": "n0"}`), run through the worker's QMP channel; the reply or the
 * error (class and text) and every QMP event are appended to the log.
 */
import type { QmpEvent } from '../../src/client/index.ts';
import { QmpError } from '../../src/block/errors.ts';
import type { App } from '../lib/app.ts';
import { byId, h } from '../lib/dom.ts';

export class QmpPanel {
  private readonly log = byId('qmp-log');
  private readonly input = byId<HTMLInputElement>('qmp-input');

  constructor(private readonly app: App) {
    byId('qmp-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.run(this.input.value);
    });
    app.client.onEvent((event) => this.event(event));
  }

  async run(text: string): Promise<void> {
    let command: { execute: string; arguments?: Record<string, unknown> };
    try {
      command = parseCommand(text);
    } catch (err) {
      this.append('error', `${text}\n→ ${(err as Error).message}`);
      return;
    }
    try {
      const result = await this.app.client.execute(command.execute, command.arguments);
      this.append('return', `${text}\n→ ${JSON.stringify({ return: result }, null, 1)}`);
    } catch (err) {
      const error =
        err instanceof QmpError ? { class: err.errorClass, desc: err.message } : { desc: String(err) };
      this.append('error', `${text}\n→ ${JSON.stringify({ error })}`);
    }
    this.app.changed();
  }

  /** One line per event: its name and data (the timestamp is the moment it appears). */
  private event(event: QmpEvent): void {
    this.append('event', `${event.event}${event.data ? ` ${JSON.stringify(event.data)}` : ''}`);
  }

  private append(kind: string, text: string): void {
    this.log.append(h('pre', { class: `qmp-${kind}` }, text));
    this.log.scrollTop = this.log.scrollHeight;
  }
}

/** `{"execute": ...}` JSON, or `name` followed by optional JSON arguments. */
function parseCommand(text: string): { execute: string; arguments?: Record<string, unknown> } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const parsed = JSON.parse(trimmed) as { execute?: unknown; arguments?: Record<string, unknown> };
    if (typeof parsed.execute !== 'string') throw new Error("QMP input needs an 'execute' member");
    return { execute: parsed.execute, arguments: parsed.arguments };
  }
  const match = /^(\S+)\s*(\{[\s\S]*\})?$/.exec(trimmed);
  if (!match) throw new Error('Type a command name, optionally followed by its arguments as JSON');
  return {
    execute: match[1]!,
    arguments: match[2] ? (JSON.parse(match[2]) as Record<string, unknown>) : undefined,
  };
}
