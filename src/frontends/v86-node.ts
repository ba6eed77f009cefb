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

const SEABIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

export interface NodeMachineOptions {
  /** Guest RAM in bytes; 64 MiB is enough for the test guest, 32 MiB hangs it. */
  memorySize: number;
  hda?: V86Disk;
  hdb?: V86Disk;
  /** Every byte the guest writes to its first serial port. */
  onSerialByte(byte: number): void;
}

/** A running v86 machine. */
export interface NodeMachine {
  /** Sends bytes to the guest's first serial port (the console's input). */
  sendSerial(bytes: Uint8Array): void;
  pause(): Promise<void>;
  resume(): Promise<void>;
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
  };
  const emulator = new V86(options);
  emulator.add_listener('serial0-output-byte', opts.onSerialByte);
  await new Promise<void>((resolve) => emulator.add_listener('emulator-started', () => resolve()));
  return {
    sendSerial: (bytes) => emulator.serial_send_bytes(0, bytes),
    pause: () => emulator.stop(),
    resume: () => emulator.run(),
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
