/**
 * Our NBD client against our NBD server over an in-memory byte stream (no sockets): the
 * negotiation results, data both ways, block status extents, error values crossing the wire,
 * and the Channel's framing of a stream chopped at arbitrary points.
 */
import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { BlockIOError } from '../../src/block/errors.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { Channel, ConnectionLost } from '../../src/nbd/channel.ts';
import { NbdClientSession } from '../../src/nbd/client.ts';
import { negotiate } from '../../src/nbd/client-handshake.ts';
import { TFlag } from '../../src/nbd/protocol.ts';
import { NbdServer } from '../../src/nbd/server.ts';

/** Two channels joined back to back; bytes are delivered in 3-byte pieces to test framing. */
function pipe(): [Channel, Channel] {
  const ends: Channel[] = [];
  const deliver = (to: () => Channel) => (data: Uint8Array) => {
    const copy = data.slice();
    queueMicrotask(() => {
      for (let i = 0; i < copy.length; i += 3) to().push(copy.subarray(i, i + 3));
    });
  };
  const other = (i: number) => () => ends[1 - i]!;
  for (const i of [0, 1]) {
    ends.push(new Channel({ send: deliver(other(i)), close: () => queueMicrotask(() => other(i)().end()) }));
  }
  return [ends[0]!, ends[1]!];
}

async function setup(writable: boolean) {
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'memory', size: 1 << 20 });
  await node.write(65536, new Uint8Array(65536).fill(7));
  const blk = new BlockBackend(graph, '', { readOnly: !writable });
  blk.insert(node);
  const server = new NbdServer();
  server.addExport({ name: 'm', writable, blk });
  const connect = async (name = 'm') => {
    const [c, s] = pipe();
    void server.serve(s);
    const session = new NbdClientSession(c, await negotiate(c, name));
    return Object.assign(session, { channel: c });
  };
  return { connect, node };
}

describe('NBD client and server', () => {
  it('negotiate structured replies, base:allocation and the export facts', async () => {
    const { connect } = await setup(true);
    const s = await connect();
    expect(s.info.size).toBe(1 << 20);
    expect(s.info.structured).toBe(true);
    expect(s.info.allocationContext).toBe(0);
    expect(s.info.maxBlock).toBe(32 << 20);
    expect(s.has(TFlag.SEND_WRITE_ZEROES) && s.has(TFlag.SEND_TRIM) && !s.has(TFlag.READ_ONLY)).toBe(true);
    s.disconnect();
  });

  it('carry reads, writes and zeroes, and report holes and data as block status', async () => {
    const { connect, node } = await setup(true);
    const s = await connect();
    await s.write(4096, new Uint8Array(512).fill(9), true);
    const buf = new Uint8Array(8192);
    await s.read(0, buf);
    expect(buf[4096]).toBe(9);
    expect(buf[4095]).toBe(0);
    expect(await s.blockStatus(0, 1 << 20)).toEqual({ length: 131072, hole: false, zero: false });
    await s.writeZeroes(0, 65536, true);
    expect(await s.blockStatus(0, 1 << 20)).toEqual({ length: 65536, hole: true, zero: true });
    expect(await s.blockStatus(65536, (1 << 20) - 65536)).toEqual({
      length: 65536,
      hole: false,
      zero: false,
    });
    const check = new Uint8Array(1);
    await node.read(65536, check);
    expect(check[0]).toBe(7);
    s.disconnect();
  });

  it('send errors back as NBD error values: EPERM read-only, EINVAL past the end', async () => {
    const { connect } = await setup(false);
    const s = await connect();
    expect(s.has(TFlag.READ_ONLY)).toBe(true);
    await expect(s.write(0, new Uint8Array(512), false)).rejects.toMatchObject({ errno: 'EPERM' });
    const err = await s.read((1 << 20) - 512, new Uint8Array(1024)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockIOError);
    expect((err as BlockIOError).errno).toBe('EINVAL');
    // The session survives failed requests.
    await s.read(0, new Uint8Array(512));
    s.disconnect();
  });

  it("refuses an unknown export with QEMU's message and the server's reason", async () => {
    const { connect } = await setup(true);
    await expect(connect('nope')).rejects.toThrow(
      "Requested export not available\nserver reported: export 'nope' not present",
    );
  });

  it('fails requests in flight with ConnectionLost when the stream ends', async () => {
    const { connect } = await setup(true);
    const s = await connect();
    const pending = s.read(0, new Uint8Array(4096));
    s.channel.end();
    await expect(pending).rejects.toBeInstanceOf(ConnectionLost);
  });
});
