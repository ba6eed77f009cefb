/**
 * The WebSocket bridge without a browser: RFC 6455's own handshake example, the NBD server's
 * greeting arriving as a binary frame, and masked client frames reaching the server (whose
 * option reply comes back through the bridge).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startBridge } from '../../src/nbd/ws-bridge.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-ws-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Collects what arrives on `sock` and waits until `n` bytes are there. */
function reader(sock: Socket) {
  let buf = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiters.splice(0).forEach((w) => w());
  });
  return async (n: number): Promise<Buffer> => {
    while (buf.length < n) await new Promise<void>((r) => waiters.push(r));
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
}

it('answers the RFC 6455 handshake and splices frames to the target socket both ways', async () => {
  const path = join(dir, 'target.sock');
  // A stand-in NBD server: greets, then echoes what it gets, prefixed with "got:".
  const target = createServer((s) => {
    s.write('NBDMAGIC');
    s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('got:'), d])));
  });
  await new Promise<void>((r) => target.listen(path, r));
  const bridge = await startBridge('127.0.0.1', 0, { type: 'unix', path });
  const sock = connect({ host: '127.0.0.1', port: bridge.port });
  const read = reader(sock);
  // RFC 6455 section 1.3's example key and the accept value it gives.
  sock.write(
    'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  const head = (await read(129)).toString('latin1');
  expect(head).toContain('HTTP/1.1 101 Switching Protocols\r\n');
  expect(head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
  // The greeting as one unmasked binary frame (FIN, opcode 2, length 8).
  expect([...(await read(10))]).toEqual([0x82, 8, ...Buffer.from('NBDMAGIC')]);
  // A masked binary client frame reaches the target unmasked.
  const mask = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.from('IHAVEOPT');
  const masked = payload.map((b, i) => b ^ mask[i & 3]!);
  sock.write(Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, masked]));
  expect((await read(14)).subarray(2).toString()).toBe('got:IHAVEOPT');
  sock.destroy();
  await bridge.close();
  target.close();
});
