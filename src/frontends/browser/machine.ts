/**
 * v86 in the page (DESIGN.md §5): the npm package's libv86.mjs and v86.wasm, Debian's SeaBIOS,
 * no keyboard, mouse or speaker (a serial-console guest; a VGA screen only if given a container),
 * the first serial port collected in a SerialConsole. IDE disks are v86 disk objects (V86Disk
 * over the worker's drives: drives.ts) or v86's own images (`{ url, async: true, size }`, for
 * comparison). Nothing here knows the graph.
 */
import { V86 } from 'v86';
import type { V86Image, V86Options } from 'v86';
import type { V86Disk } from '../v86-disk.ts';
import { DEFAULT_ASSETS, type MachineAssets } from './assets.ts';
import { SerialConsole } from './serial.ts';

/** A disk object of ours, or an image v86 loads itself. */
export type DiskSource = V86Disk | V86Image;

export interface BrowserMachineOptions {
  /** Guest RAM in bytes (default 64 MiB: enough for the test guest; 32 MiB hangs it). */
  memorySize?: number;
  hda?: DiskSource;
  hdb?: DiskSource;
  /** The ATAPI CD-ROM's medium (IDE secondary master), fixed for the machine's life. */
  cdrom?: DiskSource;
  /** The first floppy drive's disk (v86 serves only the standard floppy sizes: v86-drives.ts). */
  fda?: DiskSource;
  /** Where v86.wasm and the BIOS files are served, if not where vite put them. */
  assets?: Partial<MachineAssets>;
  /** Where v86 draws the VGA screen (v86's screen_container layout: a div and a canvas); none: no screen. */
  screenContainer?: HTMLElement;
  /**
   * Called once v86 made its CPU and devices, before the first instruction: where hooks into its
   * devices and devices of ours (virtio-blk) attach.
   */
  onLoaded?(emulator: V86): void;
}

/** A running v86 machine in this page. */
export interface BrowserMachine {
  /** The emulator, for what this interface does not cover (v86's own API). */
  readonly emulator: V86;
  /** Output of the guest's first serial port. */
  readonly serial: SerialConsole;
  /** Sends text (UTF-8) or bytes to the guest's first serial port. */
  send(input: string | Uint8Array): void;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** v86's save_state / restore_state (savevm, via the client's attachMachine): CPU, RAM, devices. */
  saveState(): Promise<Uint8Array>;
  restoreState(state: Uint8Array): Promise<void>;
  /** Stops the emulator and frees it; the machine cannot be used afterwards. */
  destroy(): Promise<void>;
}

const DEFAULT_MEMORY = 64 << 20;

/** Creates the emulator and resolves once it runs the BIOS; rejects if a BIOS file cannot load. */
export async function startBrowserMachine(opts: BrowserMachineOptions): Promise<BrowserMachine> {
  const assets = { ...DEFAULT_ASSETS, ...opts.assets };
  // Fetched here rather than by v86, which hangs silently on a missing BIOS.
  const [bios, vgaBios] = await Promise.all([fetchBuffer(assets.bios), fetchBuffer(assets.vgaBios)]);
  const options: V86Options = {
    wasm_path: assets.wasm,
    memory_size: opts.memorySize ?? DEFAULT_MEMORY,
    bios: { buffer: bios },
    vga_bios: { buffer: vgaBios },
    autostart: true,
    screen_container: opts.screenContainer,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    // v86 accepts disk objects of ours though its .d.ts admits only images (DESIGN.md §5).
    hda: opts.hda as V86Image | undefined,
    hdb: opts.hdb as V86Image | undefined,
    cdrom: opts.cdrom as V86Image | undefined,
    fda: opts.fda as V86Image | undefined,
  };
  const emulator = new V86(options);
  const serial = new SerialConsole();
  emulator.add_listener('serial0-output-byte', (b) => serial.byte(b));
  emulator.add_listener('emulator-loaded', () => opts.onLoaded?.(emulator));
  await new Promise<void>((resolve) => emulator.add_listener('emulator-started', () => resolve()));
  const encoder = new TextEncoder();
  return {
    emulator,
    serial,
    send: (input) => emulator.serial_send_bytes(0, typeof input === 'string' ? encoder.encode(input) : input),
    pause: () => emulator.stop(),
    resume: () => emulator.run(),
    saveState: async () => new Uint8Array(await emulator.save_state()),
    // v86 wants an ArrayBuffer of exactly the state.
    restoreState: (state) => emulator.restore_state(state.slice().buffer),
    destroy: () => emulator.destroy(),
  };
}

async function fetchBuffer(url: string): Promise<ArrayBuffer> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}
