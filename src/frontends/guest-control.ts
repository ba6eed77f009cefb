/**
 * The host side of the test guest's control block (scripts/guest/init). The guest's kernel
 * command line is fixed when the image is built, so run-time options travel on its disk: one
 * sector at CONTROL_OFFSET of partition 2 holding the line `BLOCKGRAPH-CTL`, then `key=value`
 * lines up to a NUL. A host writes it through the block layer before booting, and reads the boot
 * counter the guest's `persist` mode keeps (a 32-bit little-endian number at COUNTER_OFFSET).
 * Partition 2 is found from the MBR, so this works on any copy of the guest image (raw, qcow2,
 * an overlay) as long as the partition table is intact.
 */
import { genericError } from '../block/errors.ts';

/** Byte offsets inside partition 2 (scripts/build-guest.sh: CTL_OFFSET, COUNTER_OFFSET). */
export const CONTROL_OFFSET = 1 << 20;
export const COUNTER_OFFSET = CONTROL_OFFSET + 4096;
const CONTROL_MAGIC = 'BLOCKGRAPH-CTL\n';
const SECTOR = 512;

export type GuestMode = 'check' | 'shell' | 'persist' | 'ioerror' | 'bench' | 'loop';

export interface GuestControl {
  mode?: GuestMode;
  /** The disk the checks run on, e.g. `/dev/vda` (its partition 2 is the test area). */
  disk?: string;
  /** bench: the whole disks to read, e.g. `['/dev/sda', '/dev/vda']`. */
  benchDisks?: readonly string[];
  /** bench: bytes read from each disk, a multiple of 1 MiB. */
  benchBytes?: number;
  /** loop: rounds of the direct-write and write-loop checks before power-off; 0 = forever. */
  loopRounds?: number;
}

/** Byte I/O on the guest's boot disk, as a BlockBackend offers it. */
export interface GuestDiskIo {
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
}

/**
 * Writes the control block (every key not given keeps the guest's default). Throws when the disk
 * has no partition 2 or a value cannot be written as one line.
 */
export async function writeGuestControl(disk: GuestDiskIo, control: GuestControl): Promise<void> {
  const text = CONTROL_MAGIC + controlLines(control).join('');
  const sector = new Uint8Array(SECTOR);
  const bytes = new TextEncoder().encode(text);
  // One NUL at least must end the text inside the sector.
  if (bytes.length >= SECTOR) throw genericError(`guest control block too long (${bytes.length} bytes)`);
  sector.set(bytes);
  await disk.write((await partition2(disk)) + CONTROL_OFFSET, sector);
}

/** The guest's boot counter: how many `persist` boots completed on this disk (0 on a new one). */
export async function readBootCounter(disk: GuestDiskIo): Promise<number> {
  const buf = new Uint8Array(4);
  await disk.read((await partition2(disk)) + COUNTER_OFFSET, buf);
  return new DataView(buf.buffer).getUint32(0, true);
}

function controlLines(control: GuestControl): string[] {
  const entries: [string, string | undefined][] = [
    ['mode', control.mode],
    ['disk', control.disk],
    ['bench.disks', control.benchDisks?.join(' ')],
    ['bench.bytes', control.benchBytes === undefined ? undefined : benchBytes(control.benchBytes)],
    ['loop.rounds', control.loopRounds === undefined ? undefined : loopRounds(control.loopRounds)],
  ];
  return entries.flatMap(([key, value]) => {
    if (value === undefined) return [];
    if (/[\n\0]/.test(value) || value === '') throw genericError(`guest control: invalid ${key} '${value}'`);
    return [`${key}=${value}\n`];
  });
}

function benchBytes(n: number): string {
  if (!Number.isSafeInteger(n) || n <= 0 || n % (1 << 20) !== 0) {
    throw genericError(`guest control: bench.bytes must be a positive multiple of 1 MiB, not ${n}`);
  }
  return String(n);
}

function loopRounds(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw genericError(`guest control: loop.rounds must be a whole number >= 0, not ${n}`);
  }
  return String(n);
}

/** Byte offset of partition 2 from the MBR (entry 2 at 446 + 16, start LBA at +8). */
async function partition2(disk: GuestDiskIo): Promise<number> {
  const mbr = new Uint8Array(SECTOR);
  await disk.read(0, mbr);
  const view = new DataView(mbr.buffer);
  const start = view.getUint32(446 + 16 + 8, true);
  const sectors = view.getUint32(446 + 16 + 12, true);
  if (view.getUint16(510, true) !== 0xaa55 || start === 0 || sectors * SECTOR <= COUNTER_OFFSET) {
    throw genericError('guest control: the disk has no partition 2 large enough for a control block');
  }
  return start * SECTOR;
}
