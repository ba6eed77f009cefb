/**
 * What blockgraph's savevm writes into the VM state area (where QEMU writes its migration
 * stream): a header naming the machine, the snapshot fields every disk's snapshot was created
 * with and the disks, then the emulator's own state. The header is what lets loadvm refuse a
 * state that no longer belongs to the disks (savevm.ts) before it reverts any of them.
 *
 *   0   16  magic "BLOCKGRAPH-VMST\n"
 *   16   4  header length H (big-endian)
 *   20   H  header, JSON (VmStateHeader)
 *   20+H    machine state, `stateBytes` long, from the next multiple of 8
 */
import { genericError } from '../block/errors.ts';

const MAGIC = new TextEncoder().encode('BLOCKGRAPH-VMST\n');
/** QEMU_VM_FILE_MAGIC ("QEVM"): a state real QEMU saved. */
const QEMU_MAGIC = 0x5145564d;
const PREFIX = MAGIC.length + 4;
/** Far more than any real header; bounds what a corrupt length makes us read. */
const MAX_HEADER = 1 << 20;

export interface VmStateHeader {
  /** The machine's description when saved (SavevmMachine.description). */
  readonly machine: string;
  /** The fields of the snapshot savevm created on every device. */
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmClockNsec: number;
  /** The devices snapshotted together, by device (or node) name. */
  readonly devices: readonly string[];
  readonly stateBytes: number;
}

/** The bytes savevm writes: header and state. */
export function encodeVmState(header: Omit<VmStateHeader, 'stateBytes'>, state: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify({ ...header, stateBytes: state.length }));
  const at = stateOffset(json.length);
  const out = new Uint8Array(at + state.length);
  out.set(MAGIC);
  new DataView(out.buffer).setUint32(MAGIC.length, json.length);
  out.set(json, PREFIX);
  out.set(state, at);
  return out;
}

/** Reads `dst.length` bytes at `pos` of a VM state. */
export type VmStateRead = (pos: number, dst: Uint8Array) => Promise<void>;

/**
 * The header of the VM state of `size` bytes that `read` reads, and where its machine state
 * starts. Throws a GenericError naming `what` (the snapshot) when the state is not blockgraph's
 * or is cut short.
 */
export async function readVmStateHeader(
  read: VmStateRead,
  size: number,
  what: string,
): Promise<{ header: VmStateHeader; offset: number }> {
  const prefix = new Uint8Array(PREFIX);
  if (size >= PREFIX) await read(0, prefix);
  const view = new DataView(prefix.buffer);
  if (size < PREFIX || !MAGIC.every((b, i) => prefix[i] === b)) {
    const qemu = size >= 4 && view.getUint32(0) === QEMU_MAGIC;
    throw genericError(
      `The VM state of ${what} is not a blockgraph machine state` + (qemu ? ' (QEMU saved it)' : ''),
    );
  }
  const length = view.getUint32(MAGIC.length);
  if (length > MAX_HEADER || PREFIX + length > size) throw truncated(what);
  const json = new Uint8Array(length);
  await read(PREFIX, json);
  const header = parseHeader(new TextDecoder().decode(json));
  if (!header) throw genericError(`The VM state of ${what} has a corrupt header`);
  const offset = stateOffset(length);
  if (offset + header.stateBytes > size) throw truncated(what);
  return { header, offset };
}

function parseHeader(text: string): VmStateHeader | undefined {
  try {
    const h = JSON.parse(text) as VmStateHeader;
    const numbers = [h.dateSec, h.dateNsec, h.vmClockNsec, h.stateBytes];
    const ok =
      typeof h.machine === 'string' && numbers.every(Number.isSafeInteger) && Array.isArray(h.devices);
    return ok ? h : undefined;
  } catch {
    return undefined;
  }
}

function stateOffset(headerLength: number): number {
  return Math.ceil((PREFIX + headerLength) / 8) * 8;
}

function truncated(what: string): Error {
  return genericError(`The VM state of ${what} is cut short`);
}
