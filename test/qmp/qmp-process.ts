/**
 * A QMP client over a child process's stdio, for the interop test: it sends raw text and
 * collects what comes back, separating responses (return/error) from events.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export type Message = Record<string, unknown>;

/** What one step got back: the responses it waited for, and the events that came meanwhile. */
export interface Exchange {
  responses: Message[];
  events: Message[];
}

export class QmpProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffer = '';
  private readonly received: Message[] = [];
  private waiter: (() => void) | null = null;
  private stderr = '';
  readonly exited: Promise<number | null>;

  constructor(command: string, args: readonly string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.onData(chunk));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** The greeting (the first message). */
  async greeting(): Promise<Message> {
    await this.until(() => this.received.length > 0);
    return this.received.shift() as Message;
  }

  /** Sends `text` and waits for `count` responses. */
  async send(text: string, count = 1): Promise<Exchange> {
    this.child.stdin.write(`${text}\n`);
    await this.until(() => this.received.filter(isResponse).length >= count);
    const out: Exchange = { responses: [], events: [] };
    while (out.responses.length < count) {
      const m = this.received.shift() as Message;
      (isResponse(m) ? out.responses : out.events).push(m);
    }
    return out;
  }

  kill(): void {
    this.child.kill();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.received.push(JSON.parse(line) as Message);
    }
    this.waiter?.();
  }

  private until(ready: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer; stderr: ${this.stderr}`)), 5000);
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        this.waiter = null;
        resolve();
      };
      this.waiter = check;
      check();
    });
  }
}

function isResponse(m: Message): boolean {
  return 'return' in m || 'error' in m;
}
