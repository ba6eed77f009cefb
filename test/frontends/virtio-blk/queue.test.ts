import { describe, expect, it } from 'vitest';
import { F, fbit, S, T } from './driver-sim.ts';
import { GatedBackend, machine, memoryBackend, settle, tick } from './setup.ts';

const ALL = ~0n & 0xffffffffffn;
const WITHOUT_EVENT_IDX = ALL & ~fbit(F.EVENT_IDX);

describe('virtio-blk virtqueue', () => {
  it('keeps several requests in flight and returns them in completion order', async () => {
    const backend = new GatedBackend();
    const { drv, irq } = machine(backend);
    drv.init(WITHOUT_EVENT_IDX);
    const heads = [8, 16, 24].map((sector) => drv.submit({ type: T.IN, sector, inLen: 512 }).head);
    drv.kick();
    expect(backend.gates.map((g) => g.offset)).toEqual([8 * 512, 16 * 512, 24 * 512]);
    for (const k of [2, 0, 1]) {
      backend.gates[k]!.release();
      await tick();
    }
    const done = drv.poll();
    expect(done.map((c) => c.head)).toEqual([heads[2], heads[0], heads[1]]);
    expect(done.map((c) => c.status)).toEqual([S.OK, S.OK, S.OK]);
    expect(done.map((c) => c.data[0])).toEqual([24, 8, 16]); // each got its own sector's data
    expect(irq.raised).toBe(3); // one per completion: they came in separate turns
  });

  it('raises the interrupt with ISR bit 0, which a read of the ISR clears', async () => {
    const { drv, dev, irq } = machine((await memoryBackend()).backend);
    drv.init(WITHOUT_EVENT_IDX);
    drv.submit({ type: T.FLUSH });
    drv.kick();
    await settle(dev);
    expect(irq.level).toBe(true);
    expect(drv.readIsr()).toBe(1);
    expect(irq.level).toBe(false);
    expect(drv.readIsr()).toBe(0);
  });

  it('shares one interrupt among completions of the same turn', async () => {
    const { drv, dev, irq } = machine((await memoryBackend()).backend);
    drv.init(WITHOUT_EVENT_IDX);
    for (let i = 0; i < 4; i++) drv.submit({ type: T.GET_ID, inLen: 20 });
    drv.kick();
    await settle(dev);
    expect(drv.poll()).toHaveLength(4);
    expect(irq.raised).toBe(1);
  });

  it('honours VIRTQ_AVAIL_F_NO_INTERRUPT without the event index', async () => {
    const { drv, dev, irq } = machine((await memoryBackend()).backend);
    drv.init(WITHOUT_EVENT_IDX);
    drv.setNoInterrupt(true);
    drv.submit({ type: T.FLUSH });
    drv.kick();
    await settle(dev);
    expect(drv.poll()).toHaveLength(1);
    expect(irq.raised).toBe(0);
  });

  it('with the event index, interrupts only once the used index passes used_event', async () => {
    const backend = new GatedBackend();
    const { drv, irq } = machine(backend);
    drv.init(ALL);
    drv.setUsedEvent(2); // "interrupt me when the third buffer is used"
    for (let i = 0; i < 4; i++) drv.submit({ type: T.IN, sector: i, inLen: 512 });
    drv.kick();
    const raisedAfter: number[] = [];
    for (const gate of backend.gates) {
      gate.release();
      await tick();
      raisedAfter.push(irq.raised);
    }
    // The first decision has no previous one to compare with (QEMU's signalled_used_valid).
    expect(raisedAfter).toEqual([1, 1, 2, 2]);
    expect(drv.usedIdx()).toBe(4);
  });

  it('with the event index, publishes avail_event so the driver kicks only for new buffers', async () => {
    const { drv, dev } = machine((await memoryBackend()).backend);
    drv.init(ALL);
    const before = drv.availIndex;
    drv.submit({ type: T.FLUSH });
    expect(drv.wouldKick(before)).toBe(true); // avail_event starts at 0
    drv.kick();
    await settle(dev);
    const next = drv.availIndex;
    drv.submit({ type: T.FLUSH });
    expect(drv.wouldKick(next)).toBe(true); // device asked for idx 1 = the next buffer
    const afterTwo = drv.availIndex;
    drv.submit({ type: T.FLUSH });
    // The second buffer was not yet taken: avail_event still says 1, a kick is not needed.
    expect(drv.wouldKick(afterTwo)).toBe(false);
  });

  it('follows the ring across the 16-bit index wrap of a small queue', async () => {
    const { drv, dev } = machine((await memoryBackend()).backend);
    drv.init(ALL, 4);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 3; i++) drv.submit({ type: T.GET_ID, inLen: 20, indirect: true });
      drv.kick();
      await settle(dev);
      expect(drv.poll().map((c) => c.status)).toEqual([S.OK, S.OK, S.OK]);
    }
    expect(drv.usedIdx()).toBe(30);
  });

  it('asks for a reset on a malformed chain: indirect without the feature', async () => {
    const { drv, dev, irq } = machine((await memoryBackend()).backend);
    drv.init(ALL & ~fbit(F.INDIRECT_DESC));
    drv.submit({ type: T.FLUSH, indirect: true });
    drv.kick();
    await settle(dev);
    expect(drv.status() & 64).toBe(64); // DEVICE_NEEDS_RESET
    expect(drv.readIsr()).toBe(2); // configuration change notification
    expect(dev.brokenReason).toMatch(/INDIRECT/);
    expect(drv.usedIdx()).toBe(0);
    expect(irq.raised).toBe(1);
  });

  it('asks for a reset on a descriptor loop and on readable-after-writable', async () => {
    for (const [flags0, reason] of [
      [1, /loops/],
      [3, /readable descriptor after a writable/],
    ] as const) {
      const { drv, dev } = machine((await memoryBackend()).backend);
      drv.init(ALL);
      const buf = drv.alloc(64);
      drv.writeDesc(drv.descTable, 0, buf, 16, flags0, 1);
      drv.writeDesc(drv.descTable, 1, buf + 16, 16, 1, 0); // readable, NEXT back to 0
      drv.publishRaw(0);
      drv.kick();
      await settle(dev);
      expect(drv.status() & 64).toBe(64);
      expect(dev.brokenReason).toMatch(reason);
    }
  });

  it('drops completions of requests that were in flight across a device reset', async () => {
    const backend = new GatedBackend();
    const { drv } = machine(backend);
    drv.init();
    drv.submit({ type: T.IN, sector: 0, inLen: 512 });
    drv.kick();
    drv.setCommon(20, 1, 0); // reset
    backend.gates[0]!.release();
    await tick();
    expect(drv.usedIdx()).toBe(0);
  });

  it('announces a resize with a configuration interrupt and a new generation', async () => {
    const backend = new GatedBackend(1 << 20);
    const { drv, dev, irq } = machine(backend);
    drv.init();
    const gen = drv.generation();
    backend.setLength(3 << 20);
    dev.device.resized();
    expect(drv.capacity()).toBe((3 << 20) / 512);
    expect(drv.generation()).not.toBe(gen);
    expect(irq.level).toBe(true);
    expect(drv.readIsr()).toBe(2);
    dev.device.resized(); // unchanged: nothing to announce
    expect(irq.raised).toBe(1);
  });

  it('hears of a block_resize through the BlockBackend and checks requests against it', async () => {
    const env = await memoryBackend();
    const { drv, dev, irq } = machine(env.backend);
    drv.init();
    drv.submit({ type: T.IN, sector: 2048, inLen: 512 });
    drv.kick();
    await settle(dev);
    expect(drv.poll()[0]!.status).toBe(S.IOERR);
    drv.readIsr();
    await env.node.truncate(2 << 20);
    expect(drv.readIsr()).toBe(2);
    expect(irq.level).toBe(false);
    expect(drv.capacity()).toBe(4096);
    drv.submit({ type: T.IN, sector: 2048, inLen: 512 });
    drv.kick();
    await settle(dev);
    expect(drv.poll()[0]!.status).toBe(S.OK);
  });
});
