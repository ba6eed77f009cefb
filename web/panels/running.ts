/**
 * The running disk (the machine's drive `hda`): jobs on it with progress bars — "Make local"
 * (block-stream: the base's data copied into the overlay, which then stands alone) and "Copy
 * into a new image" (blockdev-mirror sync=full into a new qcow2 in this browser, cancelled once
 * ready, which in QEMU ends a mirror with a consistent copy and no pivot); a throttle node
 * inserted above the drive's root and removed again (x-blockdev-replace, DESIGN.md §4); and a
 * point-in-time export while the guest runs (fleecing: copy-before-write above the root keeps the
 * old data of every guest write in a RAM node, snapshot-access reads the frozen view).
 */
import type { BlockgraphClient } from '../../src/client/index.ts';
import type { App } from '../lib/app.ts';
import { byId } from '../lib/dom.ts';
import { exportNode } from '../lib/export.ts';
import { attempt, Progress } from '../lib/feedback.ts';
import { runJob } from '../lib/jobs.ts';
import { createKept, keptRef, keptStorage, protocolOptions } from '../lib/storage.ts';

const DRIVE = 'hda';
const MiB = 1 << 20;
/** Node-names and ids the panel owns. */
const N = {
  stream: 'make-local',
  mirror: 'copy-to-image',
  copy: 'site-copy',
  throttle: 'site-throttle',
  cbw: 'site-fleece-cbw',
  fleeceTmp: 'site-fleece-tmp',
  fleece: 'site-fleece',
};

interface Inserted {
  'node-name': string;
  image: { 'virtual-size': number; 'backing-filename'?: string };
}

export class RunningDiskPanel {
  private busy = false;
  /** The node the throttle node sits on, while it is inserted. */
  private throttled: string | undefined;
  private readonly progress = byId('running-progress');
  private readonly state = byId('running-state');
  private readonly buttons = {
    stream: byId<HTMLButtonElement>('make-local'),
    mirror: byId<HTMLButtonElement>('copy-image'),
    throttleOn: byId<HTMLButtonElement>('throttle-insert'),
    throttleOff: byId<HTMLButtonElement>('throttle-remove'),
    fleece: byId<HTMLButtonElement>('fleece-export'),
  };

  constructor(private readonly app: App) {
    const on = (b: HTMLButtonElement, what: string, fn: () => Promise<void>) =>
      b.addEventListener('click', () => void this.guard(what, fn));
    on(this.buttons.stream, 'Making the disk local failed', () => this.makeLocal());
    on(this.buttons.mirror, 'Copying the disk failed', () => this.copyToImage());
    on(this.buttons.throttleOn, 'The throttle could not be inserted', () => this.insertThrottle());
    on(this.buttons.throttleOff, 'The throttle could not be removed', () => this.removeThrottle());
    on(this.buttons.fleece, 'The point-in-time export failed', () => this.fleeceExport());
    app.onChange(() => void this.sync());
    void this.sync();
  }

  private get client(): BlockgraphClient {
    return this.app.client;
  }

  /** The node inserted in the drive, or undefined while no machine runs. */
  private async root(): Promise<Inserted | undefined> {
    const drives = await this.client.execute<{ device: string; inserted?: Inserted }[]>('query-block');
    return drives.find((d) => d.device === DRIVE)?.inserted;
  }

  private async rootOrFail(): Promise<Inserted> {
    const root = await this.root();
    if (!root) throw new Error('No machine is running: boot one first');
    return root;
  }

  /** block-stream into the drive's image below any filter (the overlay over the HTTP base). */
  private async makeLocal(): Promise<void> {
    const image = this.throttled ?? (await this.rootOrFail())['node-name'];
    const progress = new Progress(this.progress, 'Copying the base into the overlay…');
    try {
      await runJob(
        this.client,
        N.stream,
        () => this.client.execute('block-stream', { 'job-id': N.stream, device: image, ...jobSpeed() }),
        progress,
      );
      this.state.textContent = 'The disk is local: the overlay no longer needs its base';
    } finally {
      progress.done();
      this.app.changed();
    }
  }

  /** A mirror of everything the guest sees into a new kept qcow2, ended by a cancel once ready. */
  private async copyToImage(): Promise<void> {
    const root = await this.rootOrFail();
    const ref = keptRef(keptStorage(), `copies/guest-${stamp()}.qcow2`);
    const progress = new Progress(this.progress, 'Creating the new image…');
    try {
      await createKept(this.client, ref, { format: 'qcow2', size: root.image['virtual-size'] });
      await this.client.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': N.copy,
        file: protocolOptions(ref),
      });
      this.app.changed();
      try {
        await runJob(
          this.client,
          N.mirror,
          () =>
            this.client.execute('blockdev-mirror', {
              'job-id': N.mirror,
              device: root['node-name'],
              target: N.copy,
              sync: 'full',
              ...jobSpeed(),
            }),
          progress,
          () => this.client.execute('job-cancel', { id: N.mirror }),
        );
      } finally {
        await this.client.execute('blockdev-del', { 'node-name': N.copy });
      }
      this.state.textContent = `Copied into ${ref.driver === 'opfs' ? ref.filename : ref.name}`;
    } finally {
      progress.done();
      this.app.changed();
    }
  }

  /** A throttle-group with the form's limits, and a throttle node on it above the drive's root. */
  private async insertThrottle(): Promise<void> {
    if (this.throttled) return;
    const root = (await this.rootOrFail())['node-name'];
    const limits: Record<string, number> = {};
    const bps = Number(byId<HTMLInputElement>('throttle-bps').value);
    const iops = Number(byId<HTMLInputElement>('throttle-iops').value);
    if (bps > 0) limits['bps-total'] = Math.round(bps * MiB);
    if (iops > 0) limits['iops-total'] = Math.round(iops);
    await this.client.execute('object-add', { 'qom-type': 'throttle-group', id: N.throttle, limits });
    try {
      await this.client.execute('blockdev-add', {
        driver: 'throttle',
        'node-name': N.throttle,
        'throttle-group': N.throttle,
        file: root,
      });
      await this.client.execute('x-blockdev-replace', { parent: DRIVE, 'new-child': N.throttle });
    } catch (err) {
      await this.client.execute('blockdev-del', { 'node-name': N.throttle }).catch(() => {});
      await this.client.execute('object-del', { id: N.throttle });
      throw err;
    }
    this.throttled = root;
    this.state.textContent = `Throttled: ${describeLimits(limits)}`;
    this.app.changed();
  }

  private async removeThrottle(): Promise<void> {
    const below = this.throttled;
    if (!below) return;
    await this.client.execute('x-blockdev-replace', { parent: DRIVE, 'new-child': below });
    this.throttled = undefined;
    await this.client.execute('blockdev-del', { 'node-name': N.throttle });
    await this.client.execute('object-del', { id: N.throttle });
    this.state.textContent = 'Throttle removed';
    this.app.changed();
  }

  /**
   * Fleecing as QEMU documents it (docs/interop/live-block-operations): copy-before-write above
   * the root saves the old data of each guest write in a temporary node first, snapshot-access
   * reads the disk as it was at insertion; that view is exported while the guest writes on.
   */
  private async fleeceExport(): Promise<void> {
    const root = await this.rootOrFail();
    const size = root.image['virtual-size'];
    const c = this.client;
    await c.execute('blockdev-add', {
      driver: 'raw',
      'node-name': N.fleeceTmp,
      file: { driver: 'memory', size },
    });
    try {
      await c.execute('blockdev-add', {
        driver: 'copy-before-write',
        'node-name': N.cbw,
        file: root['node-name'],
        target: N.fleeceTmp,
      });
      try {
        await c.execute('x-blockdev-replace', { parent: DRIVE, 'new-child': N.cbw });
        try {
          await c.execute('blockdev-add', { driver: 'snapshot-access', 'node-name': N.fleece, file: N.cbw });
          this.app.changed();
          try {
            await exportNode(c, N.fleece, keptStorage(), `guest-${stamp()}.raw`, this.progress);
          } finally {
            await c.execute('blockdev-del', { 'node-name': N.fleece });
          }
        } finally {
          await c.execute('x-blockdev-replace', { parent: DRIVE, 'new-child': root['node-name'] });
        }
      } finally {
        await c.execute('blockdev-del', { 'node-name': N.cbw });
      }
    } finally {
      await c.execute('blockdev-del', { 'node-name': N.fleeceTmp });
      this.app.changed();
    }
    this.state.textContent = 'Exported the disk as it was when the export started';
  }

  /** Runs `fn` with the buttons disabled; a failure is shown with its QMP text. */
  private async guard(what: string, fn: () => Promise<void>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.state.textContent = '';
    await this.sync();
    await attempt(what, fn);
    this.busy = false;
    await this.sync();
  }

  private async sync(): Promise<void> {
    const running = (await this.root().catch(() => undefined)) !== undefined;
    if (!running) this.throttled = undefined;
    const idle = !this.busy && running;
    this.buttons.stream.disabled = !idle;
    this.buttons.mirror.disabled = !idle;
    this.buttons.fleece.disabled = !idle;
    this.buttons.throttleOn.disabled = !idle || this.throttled !== undefined;
    this.buttons.throttleOff.disabled = !idle || this.throttled === undefined;
  }
}

/** The form's job speed as QEMU's `speed` argument (bytes per second); none for 0. */
function jobSpeed(): { speed?: number } {
  const mibs = Number(byId<HTMLInputElement>('job-speed').value);
  return mibs > 0 ? { speed: Math.round(mibs * MiB) } : {};
}

function describeLimits(limits: Record<string, number>): string {
  const parts = [];
  if (limits['bps-total']) parts.push(`${limits['bps-total'] / MiB} MiB/s`);
  if (limits['iops-total']) parts.push(`${limits['iops-total']} requests/s`);
  return parts.join(', ') || 'no limits';
}

/** A name part that sorts by time: 20261130-004512. */
function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}
