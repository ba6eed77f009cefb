/**
 * NBD over Node sockets: TCP and Unix. Node only; the nbd driver imports this module when it
 * opens a node with an `inet` or `unix` server, so browser bundles never load `node:net`.
 */
import { connect, type Socket } from 'node:net';
import { genericError } from '../block/errors.ts';
import { addressText, type NbdAddress } from './address.ts';
import { Channel } from './channel.ts';

/** glibc's strerror() for the errors a connect() reports (QEMU prints them after the address). */
const CONNECT_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'Connection refused',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  ENOTSOCK: 'Socket operation on non-socket',
};

/** A Channel over an already connected socket (client or server side). */
export function socketChannel(socket: Socket): Channel {
  socket.setNoDelay(true);
  const channel = new Channel({
    send: (data) => void socket.write(data),
    close: () => socket.destroy(),
  });
  socket.on('data', (chunk: Buffer) => channel.push(chunk));
  socket.on('close', () => channel.end());
  socket.on('error', (err) => channel.end(err.message));
  return channel;
}

/**
 * Connects to `addr` (inet or unix). Fails with QEMU's texts: "Failed to connect to
 * 'HOST:PORT': <strerror>", or "address resolution failed for HOST:PORT: Name or service not
 * known" when the name does not resolve.
 */
export function connectSocket(addr: NbdAddress): Promise<Channel> {
  if (addr.type === 'websocket') throw genericError('WebSocket addresses need the browser transport');
  return new Promise((resolve, reject) => {
    const socket =
      addr.type === 'unix'
        ? connect({ path: addr.path })
        : connect({ host: addr.host, port: Number(addr.port) });
    const fail = (err: NodeJS.ErrnoException) => {
      socket.destroy();
      const code = err.code ?? '';
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
        reject(genericError(`address resolution failed for ${addressText(addr)}: Name or service not known`));
        return;
      }
      reject(
        genericError(`Failed to connect to '${addressText(addr)}': ${CONNECT_ERRORS[code] ?? err.message}`),
      );
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socketChannel(socket));
    });
  });
}
