/**
 * Puts a virtio-blk device (pci-modern.ts) on the PCI bus of a v86 emulator (DESIGN.md §5: v86
 * property names survive minification). v86 has no virtio-blk; this uses the same internals its
 * own PCI devices use:
 *  - `cpu.devices.pci.register_device({pci_id, pci_space, pci_bars, name})` — the config space
 *    is copied; BAR entries are captured from `cpu.io.ports` at registration, which is why the
 *    port handlers are registered first (v86 moves those entries when firmware relocates the
 *    I/O BAR);
 *  - `cpu.io.register_read/write(port, device, r8, r16, r32)` for the 256 ports of BAR0;
 *  - `pci.raise_irq/lower_irq(pci_id)` for INTx, routed through the PIIX3 PIRQ registers;
 *  - `cpu.mem8` and `cpu.write_blob` (which also drops JIT code compiled from the written
 *    bytes) for guest memory.
 * Call it after the emulator is constructed and before the guest probes PCI (before the
 * BIOS runs, i.e. right after `new V86(...)` with autostart, or before `run()`).
 */
import type { VirtioBlkOptions } from './config.ts';
import { inRange, type GuestMemory } from './guest-memory.ts';
import { BAR_SIZE, VirtioPciModern } from './pci-modern.ts';
import type { VirtioBlkBackend } from './request.ts';

/** The parts of v86's CPU this glue touches. */
interface V86Cpu {
  mem8: Uint8Array;
  memory_size: Int32Array | Uint32Array;
  write_blob(data: Uint8Array, addr: number): void;
  io: {
    ports: { device: unknown }[];
    register_read(port: number, dev: object, r8: Reader, r16?: Reader, r32?: Reader): void;
    register_write(port: number, dev: object, w8: Writer, w16?: Writer, w32?: Writer): void;
  };
  devices: {
    pci: {
      devices: unknown[];
      register_device(dev: V86PciDevice): void;
      raise_irq(pciId: number): void;
      lower_irq(pciId: number): void;
    };
  };
}
type Reader = () => number;
type Writer = (value: number) => void;

interface V86PciDevice {
  name: string;
  pci_id: number;
  pci_space: number[];
  pci_bars: { size: number }[];
}

export interface AttachedVirtioBlk {
  readonly transport: VirtioPciModern;
  /** Bus/device/function number in v86's encoding (device << 3). */
  readonly pciId: number;
  readonly ioBase: number;
}

/** PCI slots v86's own devices leave free on bus 0 (its virtio devices use 6, 7, 10–12). */
const FIRST_SLOT = 13;
/** Where to look for free I/O ports for BAR0 before firmware assigns one. */
const IO_SEARCH_START = 0xb000;
const IO_SEARCH_END = 0xf000;

/**
 * Adds a virtio-blk-pci device serving `backend` to `emulator` (a `new V86(...)` whose CPU
 * exists: its `.v86.cpu`, not in v86's .d.ts); throws if v86 has no free slot or ports.
 */
export function attachVirtioBlk(
  emulator: object,
  backend: VirtioBlkBackend,
  opts: VirtioBlkOptions = {},
): AttachedVirtioBlk {
  const cpu = (emulator as { v86: { cpu: V86Cpu } }).v86.cpu;
  const pci = cpu.devices.pci;
  const pciId = freeSlot(pci.devices);
  const ioBase = freePorts(cpu.io.ports);
  const irq = { raise: () => pci.raise_irq(pciId), lower: () => pci.lower_irq(pciId) };
  const transport = new VirtioPciModern(v86Memory(cpu), backend, irq, ioBase, opts);
  const owner = { name: 'virtio-blk' };
  for (let off = 0; off < BAR_SIZE; off++) {
    const r = (size: number) => () => transport.read(off, size);
    const w = (size: number) => (value: number) => transport.write(off, size, value);
    cpu.io.register_read(ioBase + off, owner, r(1), r(2), r(4));
    cpu.io.register_write(ioBase + off, owner, w(1), w(2), w(4));
  }
  pci.register_device({
    name: 'virtio-blk',
    pci_id: pciId,
    pci_space: Array.from(transport.pciConfig),
    pci_bars: [{ size: BAR_SIZE }],
  });
  return { transport, pciId, ioBase };
}

/** Guest RAM through v86's CPU. `mem8` is looked up at each access: it is a view that v86 owns. */
function v86Memory(cpu: V86Cpu): GuestMemory {
  const mem: GuestMemory = {
    size: cpu.memory_size[0]!,
    read: (addr, len) => {
      if (!inRange(mem, addr, len)) throw new RangeError(`guest read outside RAM at 0x${addr.toString(16)}`);
      return cpu.mem8.slice(addr, addr + len);
    },
    write: (addr, data) => {
      if (!inRange(mem, addr, data.length))
        throw new RangeError(`guest write outside RAM at 0x${addr.toString(16)}`);
      cpu.write_blob(data, addr);
    },
  };
  return mem;
}

function freeSlot(devices: unknown[]): number {
  for (let slot = FIRST_SLOT; slot < 32; slot++) if (devices[slot << 3] === undefined) return slot << 3;
  throw new Error('virtio-blk: no free PCI slot on v86 bus 0');
}

function freePorts(ports: { device: unknown }[]): number {
  for (let base = IO_SEARCH_START; base < IO_SEARCH_END; base += BAR_SIZE) {
    if (ports.slice(base, base + BAR_SIZE).every((p) => p.device === undefined)) return base;
  }
  throw new Error('virtio-blk: no free I/O port range for BAR0');
}
