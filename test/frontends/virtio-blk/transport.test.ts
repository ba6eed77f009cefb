import { describe, expect, it } from 'vitest';
import { F, fbit } from './driver-sim.ts';
import { DISK, machine, memoryBackend } from './setup.ts';

describe('virtio-blk modern PCI transport', () => {
  it('identifies as a modern virtio block device with an I/O BAR and INTx', async () => {
    const { dev } = machine((await memoryBackend()).backend);
    const v = new DataView(dev.pciConfig.buffer);
    expect(v.getUint16(0, true)).toBe(0x1af4);
    expect(v.getUint16(2, true)).toBe(0x1042);
    expect(dev.pciConfig[8]).toBe(1); // revision ≥ 1 for a non-transitional device
    expect(v.getUint32(0x10, true)).toBe(0xc001); // I/O BAR at the given port
    expect(dev.pciConfig[0x3d]).toBe(1); // INTA
    expect(dev.pciConfig[6]! & 0x10).toBe(0x10); // capability list
  });

  it('offers version 1, the ring features and the block features a writable disk has', async () => {
    const { drv } = machine((await memoryBackend()).backend);
    const offered = drv.deviceFeatures();
    for (const f of [
      F.VERSION_1,
      F.INDIRECT_DESC,
      F.EVENT_IDX,
      F.SEG_MAX,
      F.BLK_SIZE,
      F.FLUSH,
      F.DISCARD,
      F.WRITE_ZEROES,
    ]) {
      expect(offered & fbit(f), `feature ${f}`).toBe(fbit(f));
    }
    expect(offered & fbit(F.RO)).toBe(0n);
  });

  it('offers RO and no discard or write-zeroes on a read-only drive', async () => {
    const { drv } = machine((await memoryBackend({ readOnly: true })).backend);
    const offered = drv.deviceFeatures();
    expect(offered & fbit(F.RO)).toBe(fbit(F.RO));
    expect(offered & (fbit(F.DISCARD) | fbit(F.WRITE_ZEROES))).toBe(0n);
  });

  it('keeps FEATURES_OK only for offered features that include VERSION_1', async () => {
    const { drv } = machine((await memoryBackend()).backend);
    expect(drv.negotiate(fbit(F.FLUSH), true)).toBe(false); // no VERSION_1
    expect(drv.negotiate(fbit(F.VERSION_1) | fbit(F.RO), true)).toBe(false); // RO not offered
    expect(drv.negotiate(fbit(F.VERSION_1) | fbit(F.FLUSH), true)).toBe(true);
    expect(drv.dev.device.features).toBe(fbit(F.VERSION_1) | fbit(F.FLUSH));
  });

  it('shows capacity, seg_max, blk_size and the discard and write-zeroes limits', async () => {
    const { drv } = machine((await memoryBackend()).backend, { blkSize: 4096, queueSize: 128 });
    drv.init();
    expect(drv.capacity()).toBe(DISK / 512);
    expect(drv.config(12, 4)).toBe(126); // seg_max = queue size - 2
    expect(drv.config(20, 4)).toBe(4096);
    expect(drv.config(36, 4)).toBe(4194303); // max_discard_sectors
    expect(drv.config(40, 4)).toBe(1); // max_discard_seg
    expect(drv.config(44, 4)).toBe(8); // discard_sector_alignment, in sectors
    expect(drv.config(48, 4)).toBe(4194303); // max_write_zeroes_sectors
    expect(drv.config(52, 4)).toBe(1);
    expect(drv.config(56, 1)).toBe(1); // write_zeroes_may_unmap
    expect(drv.config(20, 1) | (drv.config(21, 1) << 8)).toBe(4096); // byte reads assemble
  });

  it('lets the driver shrink the queue but not grow it, and resets to the maximum', async () => {
    const { drv } = machine((await memoryBackend()).backend);
    drv.setCommon(22, 2, 0);
    expect(drv.common(24, 2)).toBe(256);
    drv.setCommon(24, 2, 512);
    expect(drv.common(24, 2)).toBe(256);
    drv.setCommon(24, 2, 64);
    expect(drv.common(24, 2)).toBe(64);
    drv.setCommon(20, 1, 0);
    expect(drv.common(24, 2)).toBe(256);
    drv.setCommon(22, 2, 1); // no second queue
    expect(drv.common(24, 2)).toBe(0);
    expect(drv.common(18, 2)).toBe(1); // num_queues
  });

  it('has no MSI-X: the vector registers read VIRTIO_MSI_NO_VECTOR', async () => {
    const { drv } = machine((await memoryBackend()).backend);
    drv.setCommon(16, 2, 0);
    drv.setCommon(26, 2, 0);
    expect(drv.common(16, 2)).toBe(0xffff);
    expect(drv.common(26, 2)).toBe(0xffff);
  });

  it('marks DEVICE_NEEDS_RESET when a queue is enabled outside guest memory', async () => {
    const { drv, dev } = machine((await memoryBackend()).backend);
    drv.negotiate(~0n);
    drv.setCommon(32, 4, 0xfff00000); // desc table beyond the 4 MiB of RAM
    drv.setCommon(28, 2, 1);
    expect(drv.status() & 64).toBe(64);
    expect(dev.brokenReason).toMatch(/outside guest memory/);
    drv.setCommon(20, 1, 0);
    expect(drv.status()).toBe(0);
  });
});
