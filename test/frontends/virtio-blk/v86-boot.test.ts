/**
 * The test guest in v86 (Node) with a virtio-blk data disk: it boots from an IDE copy of the
 * image whose control block says `disk=/dev/vda`, and runs its disk checks on partition 2 of a
 * second copy served by our virtio-blk-pci device. One boot (~15 s on a quiet machine).
 */
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../../src/block/backend.ts';
import { writeGuestControl } from '../../../src/frontends/guest-control.ts';
import { V86Disk } from '../../../src/frontends/v86-disk.ts';
import { startNodeMachine } from '../../../src/frontends/v86-node.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const GUEST = join(import.meta.dirname, '../../../guest/out/guest.raw');

async function rawBackend(graph: BlockGraph, name: string, filename: string): Promise<BlockBackend> {
  const node = await graph.open({ driver: 'raw', file: { driver: 'file', filename } });
  const backend = new BlockBackend(graph, name);
  backend.insert(node);
  backend.attachDevice(name);
  return backend;
}

/** Boots until BLOCKGRAPH-GUEST-DONE; returns the guest's BLOCKGRAPH lines. */
async function bootUntilDone(hda: V86Disk, virtio: BlockBackend): Promise<string[]> {
  const lines: string[] = [];
  let line = '';
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const machine = await startNodeMachine({
    memorySize: 64 << 20,
    hda,
    virtio: [virtio],
    onSerialByte: (b) => {
      if (b !== 0x0a) return void (line += String.fromCharCode(b));
      if (line.startsWith('BLOCKGRAPH-')) lines.push(line.trimEnd());
      if (line.startsWith('BLOCKGRAPH-GUEST-DONE')) done();
      line = '';
    },
  });
  await finished;
  await machine.destroy();
  return lines;
}

describe.skipIf(!existsSync(GUEST))('virtio-blk in v86', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-boot-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the guest a /dev/vda that passes the disk checks', { timeout: 240_000 }, async () => {
    const graph = new BlockGraph();
    const [bootFile, dataFile] = [join(dir, 'boot.raw'), join(dir, 'data.raw')];
    await copyFile(GUEST, bootFile);
    await copyFile(GUEST, dataFile);
    const boot = await rawBackend(graph, 'hd0', bootFile);
    await writeGuestControl(boot, { disk: '/dev/vda' });
    const data = await rawBackend(graph, 'vd0', dataFile);
    const lines = await bootUntilDone(new V86Disk(boot), data);
    await data.flush();
    expect(lines).toContain('BLOCKGRAPH-CHECK disk OK /dev/vda2');
    expect(lines.filter((l) => /^BLOCKGRAPH-CHECK \S+ FAIL/.test(l))).toEqual([]);
    expect(lines.some((l) => l.startsWith('BLOCKGRAPH-CHECK direct-write OK'))).toBe(true);
    expect(lines.at(-1)).toMatch(/^BLOCKGRAPH-GUEST-DONE pass=\d+ fail=0$/);
    // The guest's pattern went through virtio-blk into the data copy, not the boot disk.
    const manifest = JSON.parse(await readFile(GUEST.replace(/raw$/, 'json'), 'utf8')) as {
      pattern: { offset: number; line: string };
    };
    const patternAt = async (file: string) => {
      const f = await open(file);
      const buf = Buffer.alloc(manifest.pattern.line.length);
      await f.read(buf, 0, buf.length, manifest.pattern.offset);
      await f.close();
      return buf.toString();
    };
    expect(await patternAt(dataFile)).toBe(manifest.pattern.line);
    expect(await patternAt(bootFile)).not.toBe(manifest.pattern.line);
  });
});
