/** A QMP session on an in-process graph with its events, and a guest write loop with a shadow copy. */
import { BlockBackend } from '../../src/block/backend.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';

export type Message = Record<string, unknown>;

export interface Session {
  graph: BlockGraph;
  /** Runs a command; answers its response (`return` or `error`). */
  execute(name: string, args?: Message): Promise<Message>;
  /** Every event so far, as [name, data]. */
  events: [string, Message][];
  /** Resolves with the data of the first event `name` (since the session began) matching `pred`. */
  waitEvent(name: string, pred?: (data: Message) => boolean): Promise<Message>;
}

export async function session(): Promise<Session> {
  let graph!: BlockGraph;
  const monitor = new QmpMonitor((emit) => (graph = new BlockGraph(emit)));
  const responses: Message[] = [];
  const events: [string, Message][] = [];
  const waiters: (() => void)[] = [];
  const s = monitor.connect((text) => {
    const m = JSON.parse(text) as Message;
    if (typeof m.event === 'string') {
      events.push([m.event, m.data as Message]);
      for (const w of waiters.splice(0)) w();
    } else responses.push(m);
  });
  const execute = async (name: string, args?: Message) => {
    s.feed(`${JSON.stringify({ execute: name, ...(args && { arguments: args }) })}\n`);
    await s.idle();
    const r = responses.at(-1)!;
    return 'error' in r ? { error: r.error } : { return: r.return };
  };
  await execute('qmp_capabilities');
  const waitEvent = async (name: string, pred: (d: Message) => boolean = () => true): Promise<Message> => {
    for (;;) {
      const hit = events.find(([n, d]) => n === name && pred(d));
      if (hit) return hit[1];
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { graph, execute, events, waitEvent };
}

/** The statuses JOB_STATUS_CHANGE reported for job `id`, in order. */
export function statuses(events: [string, Message][], id: string): string[] {
  return events
    .filter(([n, d]) => n === 'JOB_STATUS_CHANGE' && d.id === id)
    .map(([, d]) => d.status as string);
}

/**
 * A guest writing random data at random places of `backend` until stopped; `shadow` gets every
 * write once it completed, so after stop() it equals what the disk must hold. Between writes the
 * guest waits `gapMs` (at least a macrotask, so timers and the jobs run).
 */
export function writeLoop(backend: BlockBackend, shadow: Uint8Array, seed = 1, gapMs = 0) {
  let running = true;
  let x = seed;
  const rand = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % n;
  };
  let writes = 0;
  const loop = (async () => {
    while (running) {
      const len = 512 * (1 + rand(64));
      const offset = 512 * rand((shadow.length - len) / 512);
      const data = new Uint8Array(len).fill(1 + rand(255));
      await backend.write(offset, data);
      shadow.set(data, offset);
      writes++;
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    get writes() {
      return writes;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Reads the whole medium of `backend`. */
export async function readAll(backend: BlockBackend): Promise<Uint8Array> {
  const buf = new Uint8Array(backend.length());
  await backend.read(0, buf);
  return buf;
}

/** A named drive on `node` (what a guest device attaches to). */
export function drive(graph: BlockGraph, name: string, nodeName: string): BlockBackend {
  const backend = new BlockBackend(graph, name);
  backend.insert(graph.lookup(nodeName));
  return backend;
}

/**
 * Where `actual` and `expected` first differ, as a short text (undefined when equal): compare
 * disk images with `expect(differs(a, b)).toBeUndefined()`, never toEqual — vitest's diff of two
 * multi-MiB arrays runs synchronously for minutes and starves the worker (no timeout fires).
 */
export function differs(actual: Uint8Array, expected: Uint8Array): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  if (at < 0) return undefined;
  let end = at;
  while (end < actual.length && actual[end] !== expected[end]) end++;
  return `${end - at} bytes differ from offset ${at}: ${actual[at]}, expected ${expected[at]}`;
}
