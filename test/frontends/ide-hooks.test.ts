/**
 * The IDE hooks and the CD-ROM tray against v86's real IDE model, driven through its I/O ports
 * as a guest driver would (the CPU never runs: each case takes a fraction of a second).
 */
import { readFileSync } from 'node:fs';
import { V86 } from 'v86';
import type { V86Options } from 'v86';
import { afterEach, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { V86Disk } from '../../src/frontends/v86-disk.ts';
import { hookMachineDrives, type MachineDrive, type V86Devices } from '../../src/frontends/v86-drives.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { COMMANDS } from '../../src/qmp/commands/index.ts';

const SIZE = 1 << 20;
/** Requests touching this sector fail (blkdebug), others succeed. */
const BAD_SECTOR = 100;
const PRIMARY = 0x1f0;
const SECONDARY = 0x170;

interface Ports {
  port_write8(port: number, value: number): void;
  port_write16(port: number, value: number): void;
  port_read8(port: number): number;
  port_read16(port: number): number;
}

interface Machine {
  emulator: V86;
  io: Ports;
  devices: V86Devices & { ide: { primary: { dma_status: number } } };
  graph: BlockGraph;
  hd: BlockBackend;
  cd: BlockBackend;
  events: { event: string; data: Record<string, unknown> }[];
}

const machines: V86[] = [];
afterEach(async () => {
  for (const m of machines.splice(0)) await m.destroy();
});

function fileBuffer(path: string): ArrayBuffer {
  const d = readFileSync(path);
  return d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength);
}

/** hda over raw → blkdebug → memory (BAD_SECTOR fails), cdrom over a 64 KiB memory disc. */
async function machine(flushDelay = 0): Promise<Machine & { flushes: () => number }> {
  const events: Machine['events'] = [];
  const graph = new BlockGraph((event, data) => events.push({ event, data }));
  const image = { driver: 'memory', size: SIZE };
  const rules = ['read_aio', 'write_aio'].map((event) => ({ event, sector: BAD_SECTOR, immediately: true }));
  const node = await graph.open({
    driver: 'raw',
    file: { driver: 'blkdebug', image, 'inject-error': rules },
  });
  const flushes = countFlushes(node, flushDelay);
  const hd = new BlockBackend(graph, 'hd0', { werror: 'report' });
  hd.insert(node);
  hd.attachDevice('hd0');
  const cd = new BlockBackend(graph, 'cd0', { readOnly: true, removable: true });
  cd.insert(await graph.open({ driver: 'memory', size: 65536 }));
  cd.attachDevice('cd0', true);
  const drives: MachineDrive[] = [
    { slot: 'hda', backend: hd, disk: new V86Disk(hd, () => {}), writeCache: true },
    { slot: 'cdrom', backend: cd, disk: new V86Disk(cd, () => {}), writeCache: true },
  ];
  const emulator = new V86({
    wasm_path: 'node_modules/v86/build/v86.wasm',
    memory_size: 32 << 20,
    bios: { buffer: fileBuffer('/usr/share/seabios/bios.bin') },
    autostart: false,
    hda: drives[0]!.disk as unknown as V86Options['hda'],
    cdrom: drives[1]!.disk as unknown as V86Options['cdrom'],
  });
  machines.push(emulator);
  await new Promise<void>((resolve) => emulator.add_listener('emulator-loaded', () => resolve()));
  const cpu = (emulator as unknown as { v86: { cpu: { io: Ports; devices: Machine['devices'] } } }).v86.cpu;
  hookMachineDrives(cpu.devices, drives, graph.emit, () => {});
  return { emulator, io: cpu.io, devices: cpu.devices, graph, hd, cd, events, flushes };
}

/** Counts flushes reaching `node`, each taking `delay` ms. */
function countFlushes(node: BlockNode, delay: number): () => number {
  let n = 0;
  const ops = node.ops;
  const flush = ops.flush?.bind(ops);
  ops.flush = async () => {
    n++;
    await new Promise((r) => setTimeout(r, delay));
    await flush?.();
  };
  return () => n;
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** Selects the master of a channel with interrupts enabled, and issues an LBA28 command. */
function command(io: Ports, base: number, cmd: number, lba = 0, count = 1): void {
  io.port_write8(base + 0x206, 0); // device control: nIEN clear
  io.port_write8(base + 6, 0xe0 | ((lba >> 24) & 15));
  io.port_write8(base + 2, count);
  io.port_write8(base + 3, lba & 255);
  io.port_write8(base + 4, (lba >> 8) & 255);
  io.port_write8(base + 5, (lba >> 16) & 255);
  io.port_write8(base + 7, cmd);
}

const status = (io: Ports, base = PRIMARY) => io.port_read8(base + 7);

describe('IDE hooks on v86', () => {
  it('IDENTIFY advertises a write cache; FLUSH CACHE waits for flush() and then interrupts', async () => {
    const m = await machine(30);
    command(m.io, PRIMARY, 0xec);
    const words = Array.from({ length: 256 }, () => m.io.port_read16(PRIMARY));
    expect(words[82]! & 0x20).toBe(0x20);
    expect(words[85]! & 0x20).toBe(0x20);

    m.devices.ide.primary.dma_status &= ~4;
    command(m.io, PRIMARY, 0xe7);
    expect(status(m.io)).toBe(0xd0); // busy: v86 alone would answer 0x50 at once
    await tick(5);
    expect([m.flushes(), status(m.io)]).toEqual([1, 0xd0]); // still busy while flush() runs
    await tick(60);
    expect(m.devices.ide.primary.dma_status & 4).toBe(4); // interrupt raised
    expect(status(m.io)).toBe(0x50);
    command(m.io, PRIMARY, 0xea); // FLUSH CACHE EXT too
    await tick(60);
    expect(m.flushes()).toBe(2);
  });

  it('a failed PIO write or read aborts its command (DRDY|ERR, ABRT); good sectors complete', async () => {
    const m = await machine();
    const writeSector = (lba: number) => {
      command(m.io, PRIMARY, 0x30, lba);
      for (let i = 0; i < 256; i++) m.io.port_write16(PRIMARY, 0xa5a5);
    };
    writeSector(BAD_SECTOR - 1);
    expect(status(m.io)).toBe(0xd0); // completion waits for the write
    await tick();
    expect(status(m.io)).toBe(0x50);

    writeSector(BAD_SECTOR);
    await tick();
    expect([status(m.io), m.io.port_read8(PRIMARY + 1)]).toEqual([0x41, 0x04]);
    expect(m.events.find((e) => e.event === 'BLOCK_IO_ERROR')?.data).toMatchObject({
      device: 'hd0',
      operation: 'write',
      action: 'report',
    });

    command(m.io, PRIMARY, 0x20, BAD_SECTOR);
    await tick();
    expect([status(m.io), m.io.port_read8(PRIMARY + 1)]).toEqual([0x41, 0x04]);
    command(m.io, PRIMARY, 0x20, BAD_SECTOR - 1);
    await tick();
    expect(status(m.io) & 0x08).toBe(0x08); // DRQ: data ready
    expect(m.io.port_read16(PRIMARY)).toBe(0xa5a5);
  });

  it('a device reset makes a request in flight stale: its completion leaves the registers alone', async () => {
    const m = await machine(40);
    command(m.io, PRIMARY, 0xe7);
    m.io.port_write8(PRIMARY + 0x206, 0x04); // SRST
    m.io.port_write8(PRIMARY + 0x206, 0x00);
    const afterReset = status(m.io);
    await tick(80);
    expect(status(m.io)).toBe(afterReset);
  });
});

describe('CD-ROM tray over QMP', () => {
  const run = (m: Machine, name: string, args: Record<string, unknown>) =>
    Promise.resolve()
      .then(() => COMMANDS.get(name)!.run({ graph: m.graph, session: { negotiate() {} }, quit() {} }, args))
      .then(
        (r): { return?: unknown; error?: string } => ({ return: r }),
        (err: Error): { return?: unknown; error?: string } => ({ error: err.message }),
      );

  /** Sends an ATAPI packet to the CD-ROM (secondary master). */
  function packet(io: Ports, bytes: number[]): void {
    io.port_write8(SECONDARY + 0x206, 0);
    io.port_write8(SECONDARY + 6, 0xa0);
    io.port_write8(SECONDARY + 7, 0xa0);
    const p = [...bytes, ...new Array(12 - bytes.length).fill(0)];
    for (let i = 0; i < 12; i += 2) io.port_write16(SECONDARY, p[i]! | (p[i + 1]! << 8));
  }

  it('a guest lock refuses eject (QEMU text) until force; tray moves are events and query-block state', async () => {
    const m = await machine();
    packet(m.io, [0x1e, 0, 0, 0, 1]); // PREVENT ALLOW MEDIUM REMOVAL: prevent
    expect((await run(m, 'query-block', {})).return).toEqual(
      expect.arrayContaining([expect.objectContaining({ device: 'cd0', locked: true, tray_open: false })]),
    );
    expect(await run(m, 'eject', { device: 'cd0' })).toEqual({
      error: "Device 'cd0' is locked and force was not specified, wait for tray to open and try again",
    });
    expect(await run(m, 'blockdev-open-tray', { id: 'cd0' })).toEqual({ return: {} }); // only a request
    expect(m.events.filter((e) => e.event === 'DEVICE_TRAY_MOVED')).toEqual([]);
    expect(await run(m, 'eject', { id: 'cd0', force: true })).toEqual({ return: {} });
    expect(m.events.filter((e) => e.event === 'DEVICE_TRAY_MOVED').map((e) => e.data)).toEqual([
      { device: 'cd0', 'tray-open': true, id: 'cd0' },
    ]);
    expect(m.cd.root).toBeNull();
    expect(m.devices.ide.secondary.master.buffer).toBeNull();
    expect(await run(m, 'blockdev-remove-medium', { id: 'hd0' })).toEqual({
      error: "Device 'hd0' is not removable",
    });
    expect(await run(m, 'blockdev-close-tray', { device: 'cd0', id: 'cd0' })).toEqual({
      error: "Need exactly one of 'device' and 'id'",
    });
    expect(await run(m, 'blockdev-close-tray', { id: 'nope' })).toEqual({ error: "Device 'nope' not found" });
  });

  it('insert-medium needs an open tray; closing it gives v86 the new disc', async () => {
    const m = await machine();
    await m.graph.blockdevAdd({ driver: 'memory', size: 4 * 2048, 'node-name': 'disc2' }, 'qmp');
    expect(await run(m, 'blockdev-insert-medium', { id: 'cd0', 'node-name': 'disc2' })).toEqual({
      error: 'Tray of the device is not open',
    });
    expect(await run(m, 'blockdev-remove-medium', { id: 'cd0' })).toEqual({
      error: "Tray of device 'cd0' is not open",
    });
    await run(m, 'blockdev-open-tray', { device: 'cd0' });
    expect(await run(m, 'blockdev-insert-medium', { id: 'cd0', 'node-name': 'disc2' })).toEqual({
      error: 'There already is a medium in the device',
    });
    await run(m, 'blockdev-remove-medium', { id: 'cd0' });
    expect(await run(m, 'blockdev-insert-medium', { id: 'cd0', 'node-name': 'disc2' })).toEqual({
      return: {},
    });
    const iface = m.devices.ide.secondary.master as unknown as {
      buffer: V86Disk | null;
      sector_count: number;
    };
    expect(iface.buffer).toBeNull(); // tray still open
    await run(m, 'blockdev-close-tray', { device: 'cd0' });
    expect(iface.buffer?.byteLength).toBe(4 * 2048);
    expect(iface.sector_count).toBe(4);
    expect(m.events.filter((e) => e.event === 'DEVICE_TRAY_MOVED').map((e) => e.data['tray-open'])).toEqual([
      true,
      false,
    ]);
  });
});
