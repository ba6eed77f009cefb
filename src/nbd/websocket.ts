/**
 * NBD over a WebSocket, the browser's transport: every binary frame carries the next bytes of
 * the same stream a TCP connection would, in both directions, so a bridge (`blockgraph
 * nbd-bridge`, or websockify) can splice it onto a TCP or Unix NBD server unchanged. Frame
 * boundaries mean nothing.
 */
import { genericError } from '../block/errors.ts';
import { Channel } from './channel.ts';

/** Opens `url`; fails with "Failed to connect to 'URL': ..." as the socket transports do. */
export function connectWebSocket(url: string): Promise<Channel> {
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      reject(genericError(`Failed to connect to '${url}': ${(err as Error).message}`));
      return;
    }
    ws.binaryType = 'arraybuffer';
    const channel = new Channel({ send: (data) => ws.send(data), close: () => ws.close() });
    ws.onmessage = (ev: MessageEvent) => {
      if (ev.data instanceof ArrayBuffer) channel.push(new Uint8Array(ev.data));
    };
    // A page learns nothing about why a WebSocket failed (no errno): say so plainly.
    ws.onerror = () => reject(genericError(`Failed to connect to '${url}': WebSocket error`));
    ws.onclose = () => channel.end();
    ws.onopen = () => resolve(channel);
  });
}
