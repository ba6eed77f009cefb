/**
 * `-qmp unix:PATH,server=on[,wait=off]` for `blockgraph boot`: QMP on a Unix socket, as
 * qemu-system's -qmp with a socket chardev (the terminal is the guest's serial console, so QMP
 * cannot share stdio). With wait=on (QEMU's default for a server) the machine starts only once
 * a client connected. Every connection is its own session; events go to all of them.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { genericError } from '../block/errors.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { BOOL_WORDS } from '../config/validate.ts';
import type { QmpMonitor } from '../qmp/monitor.ts';

export interface QmpSocketSpec {
  readonly path: string;
  readonly wait: boolean;
}

/** Parses the -qmp argument; only Unix server sockets are supported. */
export function parseQmpSocket(value: string): QmpSocketSpec {
  const { options } = parseQemuOpts(value, 'backend');
  const backend = options.backend ?? '';
  if (!backend.startsWith('unix:') || backend.length === 5) {
    throw genericError('only unix:PATH,server=on sockets are supported');
  }
  for (const key of Object.keys(options)) {
    if (!['backend', 'server', 'wait', 'nowait'].includes(key))
      throw genericError(`Invalid parameter '${key}'`);
  }
  if (!flag('server', options.server)) throw genericError('only unix:PATH,server=on sockets are supported');
  const wait = options.nowait !== undefined ? false : flag('wait', options.wait ?? 'on');
  return { path: backend.slice(5), wait };
}

/** `server` alone means on, as in QEMU's legacy `server,nowait`. */
function flag(key: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (value === '') return true;
  const b = BOOL_WORDS[value];
  if (b === undefined) throw genericError(`Parameter '${key}' expects 'on' or 'off'`);
  return b;
}

/**
 * Listens on `spec.path` (replacing a stale socket file); resolves once listening, or with
 * wait=on once the first client connected. The returned function closes the server.
 */
export async function serveQmp(monitor: QmpMonitor, spec: QmpSocketSpec): Promise<() => Promise<void>> {
  await rm(spec.path, { force: true });
  let connected!: () => void;
  const firstClient = new Promise<void>((resolve) => (connected = resolve));
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    const session = monitor.connect((text) => {
      if (socket.writable) socket.write(`${text}\r\n`);
    });
    socket.on('data', (chunk: string) => session.feed(chunk));
    connected();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(spec.path, () => resolve());
  });
  if (spec.wait) await firstClient;
  return async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
