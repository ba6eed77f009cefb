/**
 * Listening sockets for the NBD server (Node only): TCP or Unix, each accepted connection made
 * a Channel and handed over. At most `maxConnections` are served at once; further ones wait
 * (unanswered, as in a listen backlog) until a slot frees, as qemu-nbd's `-e` does.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { genericError } from '../block/errors.ts';
import type { NbdAddress } from './address.ts';
import type { Channel } from './channel.ts';
import { socketChannel } from './node-socket.ts';

export interface NbdListener {
  /** The bound TCP port (useful with port 0), or undefined for Unix sockets. */
  readonly port: number | undefined;
  /** Stops accepting; open connections are left to their owner. Removes a Unix socket file. */
  close(): Promise<void>;
}

const BIND_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'Address already in use',
  EACCES: 'Permission denied',
  ENOENT: 'No such file or directory',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

/**
 * Listens on `addr`; `serve` gets each connection and resolves when it is over. Bind failures
 * carry qemu-nbd's texts ("Failed to find an available port: ...", "Failed to bind socket to
 * PATH: ...").
 */
export function listenNbd(
  addr: NbdAddress,
  serve: (ch: Channel) => Promise<void>,
  maxConnections = Infinity,
): Promise<NbdListener> {
  if (addr.type === 'websocket') throw genericError('Cannot listen on a WebSocket address');
  let active = 0;
  const waiting: Socket[] = [];
  const admit = (socket: Socket) => {
    active++;
    void serve(socketChannel(socket)).finally(() => {
      active--;
      const next = waiting.shift();
      if (next) admit(next);
    });
  };
  const server: Server = createServer((socket) => {
    if (active < maxConnections) admit(socket);
    else {
      socket.pause();
      waiting.push(socket);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = BIND_ERRORS[err.code ?? ''] ?? err.message;
      reject(
        genericError(
          addr.type === 'unix'
            ? `Failed to bind socket to ${addr.path}: ${why}`
            : `Failed to find an available port: ${why}`,
        ),
      );
    });
    const ready = () => {
      const a = server.address();
      resolve({
        port: typeof a === 'object' && a ? a.port : undefined,
        close: async () => {
          for (const s of waiting.splice(0)) s.destroy();
          // Not waiting for close's callback: it fires only after every connection ended.
          server.close();
          if (addr.type === 'unix') removeQuietly(addr.path);
        },
      });
    };
    if (addr.type === 'unix') server.listen(addr.path, ready);
    else server.listen(Number(addr.port), addr.host, ready);
  });
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}
