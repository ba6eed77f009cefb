/**
 * A WebSocket-to-NBD bridge on Node's built-in http upgrade (no packages): each WebSocket
 * connection gets its own connection to the target NBD server (TCP or Unix), and bytes are
 * spliced both ways — client frames' payloads to the server, the server's bytes back as binary
 * frames. It does what `websockify` does for this one use, and only the part of RFC 6455 a
 * browser client needs: the handshake, masked client frames (binary, continuation, close,
 * ping), unmasked server frames.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NbdAddress } from './address.ts';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'; // RFC 6455 section 1.3
const OP_CONTINUATION = 0x0;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export interface Bridge {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens for WebSocket clients on `host:port` (0: any free port) and bridges them to `target`. */
export function startBridge(host: string, port: number, target: NbdAddress): Promise<Bridge> {
  const sockets = new Set<Duplex>();
  const http = createServer((_req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain' }).end('WebSocket upgrade required\n');
  });
  http.on('upgrade', (req: IncomingMessage, client: Duplex) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') return void client.destroy();
    const accept = createHash('sha1')
      .update(key + WS_GUID)
      .digest('base64');
    client.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    splice(client, target);
  });
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      const a = http.address();
      resolve({
        port: typeof a === 'object' && a ? a.port : port,
        close: async () => {
          for (const s of sockets) s.destroy();
          http.close();
        },
      });
    });
  });
}

/** Connects one WebSocket client to the NBD server and copies bytes until either side ends. */
function splice(client: Duplex, target: NbdAddress): void {
  const server: Socket =
    target.type === 'inet'
      ? connect({ host: target.host, port: Number(target.port) })
      : connect({ path: target.type === 'unix' ? target.path : '' });
  server.setNoDelay(true);
  const end = () => {
    client.destroy();
    server.destroy();
  };
  server.on('data', (data: Buffer) => client.write(frame(OP_BINARY, data)));
  server.on('close', end);
  server.on('error', end);
  client.on('close', end);
  client.on('error', end);
  const frames = new FrameReader((op, payload) => {
    if (op === OP_BINARY || op === OP_CONTINUATION) server.write(payload);
    else if (op === OP_PING) client.write(frame(OP_PONG, payload));
    else if (op === OP_CLOSE) {
      client.write(frame(OP_CLOSE, new Uint8Array(0)));
      end();
    }
  });
  client.on('data', (chunk: Buffer) => {
    if (!frames.push(chunk)) end();
  });
}

/** An unmasked server frame with FIN set. */
function frame(op: number, payload: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | op;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

/** Parses masked client frames from a byte stream; `push` returns false on a malformed frame. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (op: number, payload: Buffer) => void) {}

  push(chunk: Buffer): boolean {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return true;
      const op = this.buf[0]! & 0x0f;
      const masked = (this.buf[1]! & 0x80) !== 0;
      if (!masked) return false; // RFC 6455 5.1: clients must mask
      let len = this.buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return true;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return true;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + 4 + len) return true;
      const mask = this.buf.subarray(at, at + 4);
      const payload = Buffer.from(this.buf.subarray(at + 4, at + 4 + len));
      for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      this.buf = this.buf.subarray(at + 4 + len);
      this.onFrame(op, payload);
    }
  }
}
