/**
 * Starting v86 in Node (DESIGN.md §5): the npm package's build/libv86.mjs with its own
 * v86.wasm, Debian's SeaBIOS, disks given as V86Disk objects, the first serial port as the
 * console. Nothing here knows about the graph; the `boot` command wires the two together.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { V86 } from 'v86';
import type { V86Options } from 'v86';
import type { V86Disk } from './v86-disk.ts';
import type { VirtioBlkBackend } from './virtio-blk/request.ts';
import { attachVirtioBlk } from './virtio-blk/v86-pci.ts';

const SEABIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

export interface NodeMachineOptions {
  /** Guest RAM in bytes; 64 MiB is enough for the test guest, 32 MiB hangs it. */
  memorySize: number;
  hda?: V86Disk;
  hdb?: V86Disk;
  cdrom?: V86Disk;
  fda?: V86Disk;
  fdb?: V86Disk;
  /** v86's boot_order (CMOS nibbles, first device lowest: 1 floppy, 2 hard disk, 3 CD-ROM). */
  bootOrder?: number;
  /** Called with v86's device tree once it exists, before the first instruction (IDE hooks). */
  onDevices?(devices: unknown): void;
  /** Disks on virtio-blk-pci devices (ours: v86 has none), in PCI slot order. */
  virtio?: VirtioBlkBackend[];
  /** Every byte the guest writes to its first serial port. */
  onSerialByte(byte: number): void;
}

/** A running v86 machine. */
export interface NodeMachine {
  /** Sends bytes to the guest's first serial port (the console's input). */
  sendSerial(bytes: Uint8Array): void;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** v86's save_state / restore_state (savevm.ts): CPU, RAM and devices; disks stay in the graph. */
  saveState(): Promise<Uint8Array>;
  restoreState(state: Uint8Array): Promise<void>;
  /** Stops the emulator and frees it; the machine cannot be used afterwards. */
  destroy(): Promise<void>;
}

/** Creates the emulator and resolves once it has started running the BIOS. */
export async function startNodeMachine(opts: NodeMachineOptions): Promise<NodeMachine> {
  const options: V86Options = {
    wasm_path: join(v86BuildDir(), 'v86.wasm'),
    memory_size: opts.memorySize,
    bios: { buffer: fileBuffer(SEABIOS) },
    vga_bios: { buffer: fileBuffer(VGABIOS) },
    autostart: true,
    // Custom disk objects are not V86Images to the .d.ts, but v86 accepts them (DESIGN.md §5).
    hda: opts.hda as unknown as V86Options['hda'],
    hdb: opts.hdb as unknown as V86Options['hdb'],
    cdrom: opts.cdrom as unknown as V86Options['cdrom'],
    fda: opts.fda as unknown as V86Options['fda'],
    fdb: opts.fdb as unknown as V86Options['fdb'],
    boot_order: opts.bootOrder as V86Options['boot_order'],
  };
  const emulator = new V86(options);
  emulator.add_listener('serial0-output-byte', opts.onSerialByte);
  // 'emulator-loaded' comes after the CPU exists and before its first instruction.
  emulator.add_listener('emulator-loaded', () => {
    opts.onDevices?.((emulator as unknown as { v86: { cpu: { devices: unknown } } }).v86.cpu.devices);
    for (const backend of opts.virtio ?? []) attachVirtioBlk(emulator, backend);
  });
  await new Promise<void>((resolve) => emulator.add_listener('emulator-started', () => resolve()));
  return {
    sendSerial: (bytes) => emulator.serial_send_bytes(0, bytes),
    pause: () => emulator.stop(),
    resume: () => emulator.run(),
    saveState: async () => new Uint8Array(await emulator.save_state()),
    // v86 wants an ArrayBuffer of exactly the state.
    restoreState: (state) => emulator.restore_state(state.slice().buffer),
    destroy: () => emulator.destroy(),
  };
}

/** The folder holding libv86.mjs and v86.wasm of the installed `v86` package. */
function v86BuildDir(): string {
  return dirname(createRequire(import.meta.url).resolve('v86'));
}

/** A file's bytes as an ArrayBuffer of exactly its size (v86 wants `{ buffer }`). */
function fileBuffer(path: string): ArrayBuffer {
  const data = readFileSync(path);
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
}
