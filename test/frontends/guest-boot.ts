/**
 * Booting the Debian test guest in v86 (Node) from a test: disks are BlockBackends of the
 * caller's graph, so a test can change the graph while the guest runs (the guest's `loop` mode
 * keeps checking its disk in rounds meanwhile). See /tmp/guest-loop.md for the recipe.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BlockBackend } from '../../src/block/backend.ts';
import { V86Disk } from '../../src/frontends/v86-disk.ts';
import { startNodeMachine, type NodeMachine } from '../../src/frontends/v86-node.ts';

const ROOT = join(import.meta.dirname, '../..');
/** The built guest image (raw) and its layout manifest. */
export const GUEST_RAW = join(ROOT, 'guest/out/guest.raw');
export const GUEST_JSON = join(ROOT, 'guest/out/guest.json');
/** Guest start to the first loop round, several times the ~12 s of a quiet machine. */
export const GUEST_BOOT_TIMEOUT = 240_000;

/** Builds the guest if its sources changed (a fraction of a second when up to date). */
export async function buildGuest(): Promise<void> {
  await promisify(execFile)('bash', [join(ROOT, 'scripts/build-guest.sh')], { timeout: 300_000 });
}

export interface GuestBootOptions {
  /**
   * The IDE boot disk (its control block chooses the mode: writeGuestControl before booting).
   * Without one, SeaBIOS boots from the first virtio disk.
   */
  hda?: BlockBackend;
  /** Disks on virtio-blk-pci, /dev/vda first. */
  virtio?: BlockBackend[];
  /** Guest RAM in bytes (default 64 MiB, the least the guest boots with). */
  memorySize?: number;
}

/** A guest started by bootGuest: its serial console, lines and the machine. */
export class RunningGuest {
  /** Everything the guest printed on its serial console. */
  text = '';
  /** The guest's `BLOCKGRAPH-...` lines so far, without line ends. */
  readonly lines: string[] = [];
  machine!: NodeMachine;
  private line = '';
  private waiters: (() => void)[] = [];

  byte(b: number): void {
    this.text += String.fromCharCode(b);
    if (b !== 0x0a) return void (this.line += String.fromCharCode(b));
    if (this.line.startsWith('BLOCKGRAPH-')) this.lines.push(this.line.trimEnd());
    this.line = '';
    for (const wake of this.waiters.splice(0)) wake();
  }

  /**
   * Resolves with the first BLOCKGRAPH line matching `pattern`; rejects on a `BLOCKGRAPH-CHECK ...
   * FAIL` line before it, or after `timeoutMs`.
   */
  async waitForLine(pattern: RegExp, timeoutMs = GUEST_BOOT_TIMEOUT): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const failed = this.lines.find((l) => /^BLOCKGRAPH-CHECK \S+ FAIL/.test(l));
      if (failed) throw new Error(`guest check failed: ${failed}`);
      const found = this.lines.find((l) => pattern.test(l));
      if (found) return found;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} from the guest; console ends: ${this.text.slice(-600)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  /** Waits for `BLOCKGRAPH-CHECK loop OK <round>` (loop mode); a failed round rejects. */
  waitForRound(round: number, timeoutMs = GUEST_BOOT_TIMEOUT): Promise<string> {
    return this.waitForLine(new RegExp(`^BLOCKGRAPH-CHECK loop OK ${round}$`), timeoutMs);
  }

  /** Waits for `BLOCKGRAPH-GUEST-DONE` (every mode but shell ends with it, then powers off). */
  waitForDone(timeoutMs = GUEST_BOOT_TIMEOUT): Promise<string> {
    return this.waitForLine(/^BLOCKGRAPH-GUEST-DONE /, timeoutMs);
  }

  /** Stops and frees the emulator (the disks stay open: the caller closes its backends). */
  stop(): Promise<void> {
    return this.machine.destroy();
  }
}

/** Starts the guest; resolves once v86 runs the BIOS (the guest's first line comes ~10 s later). */
export async function bootGuest(opts: GuestBootOptions): Promise<RunningGuest> {
  const guest = new RunningGuest();
  guest.machine = await startNodeMachine({
    memorySize: opts.memorySize ?? 64 << 20,
    hda: opts.hda && new V86Disk(opts.hda),
    virtio: opts.virtio,
    onSerialByte: (b) => guest.byte(b),
  });
  return guest;
}
