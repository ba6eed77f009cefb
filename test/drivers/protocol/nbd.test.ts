/**
 * The nbd protocol driver against the real qemu-nbd: data both ways, zeroes, trim, FUA, block
 * status equal to qemu-img map, many requests in flight, reconnection, and QEMU's error texts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../../src/block/backend.ts';
import { BlockIOError } from '../../../src/block/errors.ts';
import type { BlockNode } from '../../../src/block/node.ts';
import { protocolOptions } from '../../../src/config/filename.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { nbdDriver } from '../../../src/drivers/protocol/nbd.ts';
import { listenNbd } from '../../../src/nbd/listen.ts';
import { NbdServer } from '../../../src/nbd/server.ts';
import type { SuiteEntry } from '../../conformance/harness.ts';
import { protocolSuite } from '../../conformance/protocol-suite.ts';
import { mergeMap, qemu, QemuNbd, qemuImgMap, type MapEntry } from '../../nbd/qemu-nbd.ts';

const MiB = 1 << 20;
let dir: string;
let image: string;
let server: QemuNbd;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-nbd-'));
  image = join(dir, 'a.qcow2');
  qemu('qemu-img', ['create', '-q', '-f', 'qcow2', image, '8M']);
  qemu('qemu-io', [
    '-f',
    'qcow2',
    '-c',
    'write -P 0xaa 0 64k',
    '-c',
    'write -P 0xbb 3M 1M',
    '-c',
    'write -z 5M 64k',
    image,
  ]);
  server = await new QemuNbd(join(dir, 's.sock'), ['-e', '8', '-f', 'qcow2', '-x', 'exp', image]).start();
});

afterAll(async () => {
  await server.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function openNbd(graph: BlockGraph, extra: Record<string, unknown> = {}): Promise<BlockNode> {
  return graph.open({ ...protocolOptions(server.uri('exp')), ...extra });
}

/** Our node's block status over the whole node, as qemu-img map entries. */
async function ourMap(node: BlockNode): Promise<MapEntry[]> {
  const out: MapEntry[] = [];
  for (let at = 0; at < node.length();) {
    const s = await node.blockStatus(at, node.length() - at);
    out.push({ start: at, length: s.bytes, data: s.data, zero: s.zero });
    at += s.bytes;
  }
  return mergeMap(out);
}

describe('nbd driver against qemu-nbd', () => {
  it('reads what qemu-io wrote and reports the export size', async () => {
    const graph = new BlockGraph();
    const node = await openNbd(graph);
    expect(node.length()).toBe(8 * MiB);
    const buf = new Uint8Array(128 * 1024);
    await node.read(0, buf);
    expect(buf.subarray(0, 65536).every((b) => b === 0xaa)).toBe(true);
    expect(buf.subarray(65536).every((b) => b === 0)).toBe(true);
    expect(node.filename()).toBe(`nbd+unix:///exp?socket=${server.socket}`);
    await graph.release(node);
  });

  it('block status equals qemu-img map of the exported image', async () => {
    const graph = new BlockGraph();
    const node = await openNbd(graph);
    const theirs = qemuImgMap(['-f', 'qcow2', '-U', image]);
    expect(await ourMap(node)).toEqual(theirs);
    expect(theirs.some((e) => e.data) && theirs.some((e) => !e.data)).toBe(true);
    await graph.release(node);
  });

  it('writes (with FUA), zeroes, trims and flushes, as qemu-io then reads them', async () => {
    const graph = new BlockGraph();
    const node = await openNbd(graph);
    await node.write(MiB, new Uint8Array(65536).fill(0x11), { fua: true });
    await node.write(MiB + 65536, new Uint8Array(65536).fill(0x22));
    await node.writeZeroes(3 * MiB, 65536, { unmap: false });
    await node.writeZeroes(3 * MiB + 65536, 65536, { unmap: true });
    await node.discard(0, 65536);
    await node.flush();
    const map = await ourMap(node);
    expect(map.find((e) => e.start <= MiB && MiB < e.start + e.length)?.data).toBe(true);
    await graph.release(node);
    qemu('qemu-io', [
      '-f',
      'raw',
      '-r',
      '-c',
      'read -P 0x11 1M 64k',
      '-c',
      'read -P 0x22 1088k 64k',
      '-c',
      'read -P 0 3M 128k',
      '-c',
      'read -P 0xbb 3200k 64k',
      server.uri('exp'),
    ]);
  });

  it('keeps many requests in flight and matches each reply to its request', async () => {
    const graph = new BlockGraph();
    const node = await openNbd(graph);
    const writes = Array.from({ length: 32 }, (_, i) =>
      node.write(6 * MiB + i * 4096, new Uint8Array(4096).fill(i + 1)),
    );
    await Promise.all(writes);
    const bufs = Array.from({ length: 32 }, () => new Uint8Array(4096));
    await Promise.all(bufs.map((b, i) => node.read(6 * MiB + i * 4096, b)));
    bufs.forEach((b, i) => expect(b.every((x) => x === i + 1)).toBe(true));
    await graph.release(node);
  });

  it('reconnects within reconnect-delay; without it a dropped connection fails with EIO', async () => {
    const graph = new BlockGraph();
    const patient = await openNbd(graph, { 'reconnect-delay': 5 });
    const impatient = await openNbd(graph);
    await server.kill();
    const buf = new Uint8Array(4096);
    const pending = patient.read(0, buf);
    await expect(impatient.read(0, new Uint8Array(512))).rejects.toBeInstanceOf(BlockIOError);
    await server.start();
    await pending;
    expect(buf[0]).toBe(0xaa);
    // The impatient node connects again on its next request (QEMU's CONNECTING_NOWAIT).
    await impatient.read(0, buf);
    await graph.release(patient);
    await graph.release(impatient);
  });

  it('fails with QEMU texts for a missing server, an unknown export and TLS', async () => {
    const graph = new BlockGraph();
    const missing = join(dir, 'nosock');
    await expect(graph.open(protocolOptions(`nbd+unix:///?socket=${missing}`))).rejects.toThrow(
      `Failed to connect to '${missing}': No such file or directory`,
    );
    await expect(graph.open(protocolOptions('nbd://127.0.0.1:1/'))).rejects.toThrow(
      "Failed to connect to '127.0.0.1:1': Connection refused",
    );
    await expect(graph.open(protocolOptions(server.uri('nosuch')))).rejects.toThrow(
      "Requested export not available\nserver reported: export 'nosuch' not present",
    );
    await expect(openNbd(graph, { 'tls-creds': 'tls0' })).rejects.toThrow(/does not support TLS/);
    await expect(
      graph.open({ driver: 'nbd', server: { type: 'unix', path: missing }, path: missing }),
    ).rejects.toThrow("Cannot use 'server' and path/host/port at the same time");
    await expect(graph.open({ driver: 'nbd' })).rejects.toThrow('NBD server address missing');
    expect(graph.nodes.size).toBe(0);
  });

  it('opens with the legacy path option and refuses writes to a read-only export', async () => {
    const raw = join(dir, 'ro.raw');
    qemu('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
    const ro = await new QemuNbd(join(dir, 'ro.sock'), ['-r', '-f', 'raw', raw]).start();
    try {
      const graph = new BlockGraph();
      await expect(graph.open({ driver: 'nbd', path: ro.socket })).rejects.toThrow('NBD export is read-only');
      const node = await graph.open({ driver: 'nbd', path: ro.socket, 'read-only': true });
      const buf = new Uint8Array(1);
      await node.read(0, buf);
      expect(buf[0]).toBe(0xaa);
      await graph.release(node);
    } finally {
      await ro.kill();
    }
  });
});

/**
 * The protocol conformance suite over NBD: each image is a memory node exported by our own
 * server on a Unix socket of its own, opened by the nbd driver.
 */
let images = 0;
const nbdOverMemory: SuiteEntry = {
  name: 'nbd (blockgraph server, memory export)',
  caps: { ...nbdDriver.capabilities, discardZeroes: true, sparse: true },
  create: async (size) => {
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'memory', size });
    const blk = new BlockBackend(graph, '', {});
    blk.insert(node);
    const server = new NbdServer();
    server.addExport({ name: '', writable: true, blk });
    const path = join(dir, `conformance-${images++}.sock`);
    const listener = await listenNbd({ type: 'unix', path }, (ch) => server.serve(ch));
    return {
      options: { driver: 'nbd', server: { type: 'unix', path } },
      destroy: async () => {
        await listener.close();
        server.closeAll();
        await blk.close();
      },
    };
  },
};
protocolSuite({ describe, it }, [nbdOverMemory]);
