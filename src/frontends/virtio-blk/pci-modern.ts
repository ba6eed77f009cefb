/**
 * The modern (VIRTIO 1.x, non-transitional) virtio PCI transport (VIRTIO 1.2 §4.1) for one
 * virtio-blk device, independent of any emulator: the PCI configuration header with its
 * vendor capabilities (§4.1.4), and one I/O BAR holding the four structures they point to:
 *
 *   BAR0 + 0x00  common configuration (§4.1.4.3), 56 bytes
 *   BAR0 + 0x40  notification (§4.1.4.4): one le16 register, notify_off_multiplier 0
 *   BAR0 + 0x44  ISR status (§4.1.4.5), 1 byte, cleared (and the INTx line lowered) by reading
 *   BAR0 + 0x80  device configuration (§4.1.4.6): struct virtio_blk_config
 *
 * Why our own transport and not v86's `VirtIO` class: v86 does not export it, an instance exists
 * only when a v86 virtio device (net, 9p, console, balloon) is configured, and its queue code has
 * no indirect descriptors to speak of, no event index suppression and completes in order. Why an
 * I/O BAR: v86's PCI bus relocates I/O BARs when firmware programs them but not memory BARs.
 * No MSI-X (v86 has none): interrupts are INTx, signalled through the ISR. No
 * VIRTIO_PCI_CAP_PCI_CFG capability: v86's PCI bus stores config-space writes without telling
 * the device, so its access window could not work (Linux and SeaBIOS do not use it with I/O BARs).
 */
import { VirtioBlk, type DeviceHost } from './device.ts';
import type { VirtioBlkOptions } from './config.ts';
import type { GuestMemory } from './guest-memory.ts';
import { Registers, type Field } from './registers.ts';
import type { VirtioBlkBackend } from './request.ts';
import {
  bit,
  Feature,
  Isr,
  PCI_DEVICE_VIRTIO_BLK,
  PCI_VENDOR_VIRTIO,
  PciCap,
  Status,
  VIRTIO_ID_BLOCK,
} from './spec.ts';

export const BAR_SIZE = 256;
export const Layout = {
  COMMON: 0x00,
  COMMON_BYTES: 56,
  NOTIFY: 0x40,
  NOTIFY_BYTES: 4,
  ISR: 0x44,
  DEVICE: 0x80,
  DEVICE_BYTES: 64,
} as const;

/** §4.1.4.3: the common configuration registers (`struct virtio_pci_common_cfg`). */
export const Common = {
  DEVICE_FEATURE_SELECT: 0,
  DEVICE_FEATURE: 4,
  DRIVER_FEATURE_SELECT: 8,
  DRIVER_FEATURE: 12,
  MSIX_CONFIG: 16,
  NUM_QUEUES: 18,
  DEVICE_STATUS: 20,
  CONFIG_GENERATION: 21,
  QUEUE_SELECT: 22,
  QUEUE_SIZE: 24,
  QUEUE_MSIX_VECTOR: 26,
  QUEUE_ENABLE: 28,
  QUEUE_NOTIFY_OFF: 30,
  QUEUE_DESC: 32,
  QUEUE_DRIVER: 40,
  QUEUE_DEVICE: 48,
} as const;

/** VIRTIO_MSI_NO_VECTOR: what the MSI-X vector registers read without MSI-X. */
const NO_VECTOR = 0xffff;

/** The INTx line of the device's PCI function. */
export interface PciIrq {
  raise(): void;
  lower(): void;
}

export class VirtioPciModern implements DeviceHost {
  readonly device: VirtioBlk;
  /** The 256-byte PCI configuration space (type 0 header and capabilities). */
  readonly pciConfig: Uint8Array;
  status = 0;
  /** Why the device last set DEVICE_NEEDS_RESET, for diagnostics. */
  brokenReason: string | undefined;
  private isr = 0;
  private generation = 0;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private driverFeatures = 0n;
  private queueSelect = 0;
  private readonly common: Registers;

  /** `ioBase` is where BAR0 starts before firmware moves it (the low bit marks an I/O BAR). */
  constructor(
    mem: GuestMemory,
    backend: VirtioBlkBackend,
    private readonly irq: PciIrq,
    ioBase: number,
    opts: VirtioBlkOptions = {},
  ) {
    this.device = new VirtioBlk(mem, backend, this, opts);
    this.pciConfig = pciHeader(ioBase);
    this.common = new Registers(this.commonFields());
  }

  /** An I/O read of `size` bytes at `offset` into BAR0. */
  read(offset: number, size: number): number {
    if (offset >= Layout.COMMON && offset < Layout.COMMON + Layout.COMMON_BYTES) {
      return this.common.read(offset - Layout.COMMON, size);
    }
    if (offset === Layout.ISR) return this.readIsr();
    if (offset >= Layout.DEVICE && offset < Layout.DEVICE + Layout.DEVICE_BYTES) {
      return leRead(this.device.config(), offset - Layout.DEVICE, size);
    }
    return 0;
  }

  /** An I/O write of `size` bytes at `offset` into BAR0. The device config is read-only. */
  write(offset: number, size: number, value: number): void {
    if (offset >= Layout.COMMON && offset < Layout.COMMON + Layout.COMMON_BYTES) {
      this.common.write(offset - Layout.COMMON, size, value);
    } else if (offset === Layout.NOTIFY && size === 2) {
      this.device.notify(value);
    }
  }

  interrupt(isr: number): void {
    this.isr |= isr;
    this.irq.raise();
  }

  configChanged(): void {
    this.generation = (this.generation + 1) & 0xff;
    if (this.status & Status.DRIVER_OK) this.interrupt(Isr.CONFIG);
  }

  needsReset(reason: string): void {
    this.brokenReason = reason;
    this.status |= Status.DEVICE_NEEDS_RESET;
    if (this.status & Status.DRIVER_OK) this.interrupt(Isr.CONFIG);
  }

  /** §4.1.4.5: reading the ISR returns and clears it, and deasserts the interrupt. */
  private readIsr(): number {
    const isr = this.isr;
    this.isr = 0;
    this.irq.lower();
    return isr;
  }

  /**
   * §2.1, §3.1.1: 0 resets the device. FEATURES_OK sticks only for a feature set the device
   * offered that includes VIRTIO_F_VERSION_1 (§6.1: this device has no legacy interface); the
   * driver reads the status back to see whether it did.
   */
  private writeStatus(value: number): void {
    if (value === 0) return this.reset();
    const newly = value & ~this.status;
    if (newly & Status.FEATURES_OK) {
      const ok =
        (this.driverFeatures & ~this.device.offered) === 0n &&
        (this.driverFeatures & bit(Feature.VERSION_1)) !== 0n;
      if (ok) this.device.features = this.driverFeatures;
      else value &= ~Status.FEATURES_OK;
    }
    this.status = value | (this.status & Status.DEVICE_NEEDS_RESET);
  }

  private reset(): void {
    this.device.reset();
    this.status = 0;
    this.brokenReason = undefined;
    this.deviceFeatureSelect = this.driverFeatureSelect = this.queueSelect = 0;
    this.driverFeatures = 0n;
    this.isr = 0;
    this.irq.lower();
  }

  private commonFields(): Field[] {
    const q = () => (this.queueSelect === 0 ? this.device.queue : undefined);
    const window = (features: bigint, select: number) =>
      Number((features >> BigInt(32 * select)) & 0xffffffffn);
    const addr = (offset: number, key: 'descAddr' | 'availAddr' | 'usedAddr'): Field[] => [
      { offset, size: 4, get: () => (q()?.[key] ?? 0) % 2 ** 32, set: (v) => this.setAddr(key, v, false) },
      {
        offset: offset + 4,
        size: 4,
        get: () => Math.floor((q()?.[key] ?? 0) / 2 ** 32),
        set: (v) => this.setAddr(key, v, true),
      },
    ];
    return [
      {
        offset: Common.DEVICE_FEATURE_SELECT,
        size: 4,
        get: () => this.deviceFeatureSelect,
        set: (v) => (this.deviceFeatureSelect = v),
      },
      {
        offset: Common.DEVICE_FEATURE,
        size: 4,
        get: () => window(this.device.offered, this.deviceFeatureSelect),
      },
      {
        offset: Common.DRIVER_FEATURE_SELECT,
        size: 4,
        get: () => this.driverFeatureSelect,
        set: (v) => (this.driverFeatureSelect = v),
      },
      {
        offset: Common.DRIVER_FEATURE,
        size: 4,
        get: () => window(this.driverFeatures, this.driverFeatureSelect),
        set: (v) => this.setDriverFeatures(v),
      },
      { offset: Common.MSIX_CONFIG, size: 2, get: () => NO_VECTOR, set: () => {} },
      { offset: Common.NUM_QUEUES, size: 2, get: () => 1 },
      { offset: Common.DEVICE_STATUS, size: 1, get: () => this.status, set: (v) => this.writeStatus(v) },
      { offset: Common.CONFIG_GENERATION, size: 1, get: () => this.generation },
      {
        offset: Common.QUEUE_SELECT,
        size: 2,
        get: () => this.queueSelect,
        set: (v) => (this.queueSelect = v),
      },
      { offset: Common.QUEUE_SIZE, size: 2, get: () => q()?.size ?? 0, set: (v) => this.setQueueSize(v) },
      { offset: Common.QUEUE_MSIX_VECTOR, size: 2, get: () => NO_VECTOR, set: () => {} },
      {
        offset: Common.QUEUE_ENABLE,
        size: 2,
        get: () => Number(q()?.enabled ?? false),
        set: (v) => this.enableQueue(v),
      },
      { offset: Common.QUEUE_NOTIFY_OFF, size: 2, get: () => 0 },
      ...addr(Common.QUEUE_DESC, 'descAddr'),
      ...addr(Common.QUEUE_DRIVER, 'availAddr'),
      ...addr(Common.QUEUE_DEVICE, 'usedAddr'),
    ];
  }

  /** Features are written 32 bits at a time through the select window (§4.1.4.3). */
  private setDriverFeatures(v: number): void {
    if (this.status & Status.FEATURES_OK || this.driverFeatureSelect > 1) return;
    const shift = BigInt(32 * this.driverFeatureSelect);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v) << shift);
  }

  /** A smaller queue the driver may choose; the device's size is the maximum (§4.1.4.3.2). */
  private setQueueSize(v: number): void {
    const queue = this.device.queue;
    if (this.queueSelect !== 0 || queue.enabled || v === 0 || v > queue.maxSize) return;
    queue.size = v;
  }

  private setAddr(key: 'descAddr' | 'availAddr' | 'usedAddr', v: number, high: boolean): void {
    const queue = this.device.queue;
    if (this.queueSelect !== 0 || queue.enabled) return;
    const low = queue[key] % 2 ** 32;
    const hi = Math.floor(queue[key] / 2 ** 32);
    queue[key] = high ? v * 2 ** 32 + low : hi * 2 ** 32 + v;
  }

  private enableQueue(v: number): void {
    if (this.queueSelect !== 0 || v !== 1) return;
    try {
      this.device.queue.enable();
    } catch (err) {
      this.needsReset((err as Error).message);
    }
  }
}

/**
 * The type 0 header (§4.1.2): vendor 0x1AF4, device 0x1042, revision 1, class mass storage
 * (QEMU uses PCI_CLASS_STORAGE_SCSI for virtio-blk), subsystem id 2, interrupt pin A, BAR0 an
 * I/O BAR at `ioBase`, and the vendor capabilities (cap_vndr 0x09) at 0x40.
 */
function pciHeader(ioBase: number): Uint8Array {
  const c = new Uint8Array(256);
  const v = new DataView(c.buffer);
  v.setUint16(0x00, PCI_VENDOR_VIRTIO, true);
  v.setUint16(0x02, PCI_DEVICE_VIRTIO_BLK, true);
  v.setUint16(0x04, 0x0001, true); // I/O space decoding on
  v.setUint16(0x06, 0x0010, true); // capabilities list present
  c[0x08] = 1;
  c[0x0b] = 0x01;
  v.setUint32(0x10, ioBase | 1, true);
  v.setUint16(0x2c, PCI_VENDOR_VIRTIO, true);
  v.setUint16(0x2e, VIRTIO_ID_BLOCK, true);
  c[0x34] = 0x40;
  c[0x3d] = 1;
  const caps: [type: number, offset: number, length: number][] = [
    [PciCap.COMMON_CFG, Layout.COMMON, Layout.COMMON_BYTES],
    [PciCap.NOTIFY_CFG, Layout.NOTIFY, Layout.NOTIFY_BYTES],
    [PciCap.ISR_CFG, Layout.ISR, 1],
    [PciCap.DEVICE_CFG, Layout.DEVICE, Layout.DEVICE_BYTES],
  ];
  let at = 0x40;
  caps.forEach(([type, offset, length], i) => {
    const len = type === PciCap.NOTIFY_CFG ? 20 : 16; // notify adds notify_off_multiplier (0)
    const next = i === caps.length - 1 ? 0 : at + len;
    c.set([0x09, next, len, type, 0], at);
    v.setUint32(at + 8, offset, true);
    v.setUint32(at + 12, length, true);
    at += len;
  });
  return c;
}

function leRead(bytes: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = 0; i < size; i++) value |= (bytes[offset + i] ?? 0) << (8 * i);
  return value >>> 0;
}
