/**
 * The virtio-blk device (VIRTIO 1.2 §5.2) without a transport: one request queue, the config
 * space, and requests run against a BlockBackend-like object. Several requests run at once and
 * complete in whatever order the backend finishes them; completions reaching the used ring in
 * the same turn of the event loop share one interrupt decision.
 *
 * The transport (pci-modern.ts) owns the status register, feature negotiation and the ISR; it
 * tells the device the negotiated features, forwards queue notifications, and hears back
 * through DeviceHost.
 */
import { blkLimits, configSpace, offeredFeatures, type BlkLimits, type VirtioBlkOptions } from './config.ts';
import type { GuestMemory } from './guest-memory.ts';
import { executeRequest, parseRequest, type BlkRequest, type VirtioBlkBackend } from './request.ts';
import { bit, Feature, Isr, SECTOR } from './spec.ts';
import { SplitVirtqueue, VirtqueueError } from './virtqueue.ts';

/** What the device asks of its transport. */
export interface DeviceHost {
  /** Sets `isr` bits (Isr.QUEUE, Isr.CONFIG) and raises the interrupt. */
  interrupt(isr: number): void;
  /** The device config changed (capacity): new generation, config interrupt after DRIVER_OK. */
  configChanged(): void;
  /** The driver broke the ring protocol: set DEVICE_NEEDS_RESET (§2.1.2). */
  needsReset(reason: string): void;
}

export class VirtioBlk {
  readonly offered: bigint;
  readonly limits: BlkLimits;
  readonly queue: SplitVirtqueue;
  /** Negotiated features, set by the transport at FEATURES_OK; zero after reset. */
  features = 0n;
  /** Capacity in 512-byte sectors as the driver was last told. */
  private capacity: number;
  /** Bumped by reset: completions of requests from before a reset are dropped. */
  private epoch = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private interruptQueued = false;

  constructor(
    private readonly mem: GuestMemory,
    private readonly backend: VirtioBlkBackend,
    private readonly host: DeviceHost,
    opts: VirtioBlkOptions = {},
  ) {
    this.limits = blkLimits(opts);
    this.offered = offeredFeatures(opts, backend.readOnly);
    this.capacity = this.backendSectors();
    backend.onResize?.(() => this.resized());
    this.queue = new SplitVirtqueue(mem, this.limits.queueSize, () => ({
      indirect: (this.features & bit(Feature.RING_INDIRECT_DESC)) !== 0n,
      eventIdx: (this.features & bit(Feature.RING_EVENT_IDX)) !== 0n,
    }));
  }

  /** `struct virtio_blk_config` as the driver reads it now. */
  config(): Uint8Array {
    return configSpace(this.limits, this.capacity, this.offered);
  }

  /** Device reset (§2.4): queue and features forgotten, requests in flight no longer answered. */
  reset(): void {
    this.epoch++;
    this.features = 0n;
    this.queue.reset();
  }

  /** The driver notified queue `index`: starts every request it made available. */
  notify(index: number): void {
    if (index !== 0) return;
    try {
      for (let chain = this.queue.pop(); chain; chain = this.queue.pop()) {
        this.start(chain.head, parseRequest(this.mem, chain));
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Re-reads the backend's length after a resize (QEMU's virtio_blk_resize; called by the
   * backend's onResize when it has one): a changed capacity is announced with a configuration
   * change notification.
   */
  resized(): void {
    const sectors = this.backendSectors();
    if (sectors === this.capacity) return;
    this.capacity = sectors;
    this.host.configChanged();
  }

  /** Resolves when every request started so far has completed. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private start(head: number, req: BlkRequest): void {
    const epoch = this.epoch;
    const ctx = {
      mem: this.mem,
      backend: this.backend,
      limits: this.limits,
      features: this.features,
      capacity: this.capacity,
    };
    const done = executeRequest(ctx, req).then(
      (status) => {
        // After a reset or a broken ring the driver no longer expects this answer.
        if (epoch !== this.epoch || !this.queue.enabled) return;
        this.mem.write(req.statusAddr, new Uint8Array([status]));
        this.queue.push(head, req.inLen);
        this.queueInterrupt();
      },
      (err: unknown) => {
        if (epoch === this.epoch) this.fail(err);
      },
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /** One interrupt decision for all completions of this turn (§2.7.7 suppression applies). */
  private queueInterrupt(): void {
    if (this.interruptQueued) return;
    this.interruptQueued = true;
    queueMicrotask(() => {
      this.interruptQueued = false;
      if (this.queue.enabled && this.queue.shouldInterrupt()) this.host.interrupt(Isr.QUEUE);
    });
  }

  private fail(err: unknown): void {
    if (!(err instanceof VirtqueueError)) throw err;
    this.queue.enabled = false;
    this.host.needsReset(err.message);
  }

  private backendSectors(): number {
    return Math.floor(this.backend.length() / SECTOR);
  }
}
