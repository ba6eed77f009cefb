/** Builds a virtio-blk PCI device over a BlockBackend on a memory node, and a driver for it. */
import { BlockBackend, type BackendOptions } from '../../../src/block/backend.ts';
import type { VirtioBlkOptions } from '../../../src/frontends/virtio-blk/config.ts';
import { VirtioPciModern } from '../../../src/frontends/virtio-blk/pci-modern.ts';
import type { VirtioBlkBackend } from '../../../src/frontends/virtio-blk/request.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { ArrayMemory, DriverSim, TestIrq } from './driver-sim.ts';

export const DISK = 1 << 20;

export async function memoryBackend(opts: BackendOptions = {}, size = DISK) {
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'memory', size });
  const backend = new BlockBackend(graph, 'vd0', opts);
  backend.insert(node);
  backend.attachDevice('virtio0');
  return { graph, node, backend };
}

export function machine(backend: VirtioBlkBackend, opts: VirtioBlkOptions = {}) {
  const mem = new ArrayMemory(4 << 20);
  const irq = new TestIrq();
  const dev = new VirtioPciModern(mem, backend, irq, 0xc000, opts);
  return { mem, irq, dev, drv: new DriverSim(dev, mem) };
}

/** Waits until every started request completed and its interrupt decision was made. */
export async function settle(dev: VirtioPciModern): Promise<void> {
  await dev.device.drain();
  await tick();
}

/** One turn of the event loop: released GatedBackend reads complete and are answered. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function pattern(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed) & 0xff);
}

/** A backend whose reads wait until the test releases them, one by one and in any order. */
export class GatedBackend implements VirtioBlkBackend {
  readonly readOnly = false;
  readonly gates: { offset: number; release: () => void }[] = [];
  constructor(private size = DISK) {}
  length(): number {
    return this.size;
  }
  setLength(size: number): void {
    this.size = size;
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.gates.push({
        offset,
        release: () => {
          dst.fill(offset / 512);
          resolve();
        },
      });
    });
  }
  async write(): Promise<void> {}
  async flush(): Promise<void> {}
  async discard(): Promise<void> {}
  async writeZeroes(): Promise<void> {}
}
