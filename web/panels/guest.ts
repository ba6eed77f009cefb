/**
 * The machine panel: boots the test guest (its shell mode) from the published compressed qcow2
 * over HTTP (build/site/guest, the chunked layout: any static host serves it) under a qcow2
 * overlay kept in the browser, so what the user writes survives a reload; "Reset disk" deletes
 * the overlay; "Save state" / "Restore" are HMP savevm / loadvm (the state goes into the overlay).
 * Other panels boot the same machine with their own disks (bootWith).
 */
import { DriveHandle, type DriveSpec, type StoredImageRef } from '../../src/client/index.ts';
import { bootFromDrives, driveBackend, type DriveMachine } from '../../src/frontends/browser/drives.ts';
import { writeGuestControl } from '../../src/frontends/guest-control.ts';
import type { App } from '../lib/app.ts';
import { byId } from '../lib/dom.ts';
import { attempt, confirmDialog, Progress, showError } from '../lib/feedback.ts';
import { createKept, isKept, keptRef, keptStorage, protocolOptions, touch } from '../lib/storage.ts';
import type { Terminal } from './terminal.ts';

const MEMORY = 64 << 20;
/** The node-names the graph panel shows. */
const BASE_NODE = 'guest-base';
const OVERLAY_NODE = 'guest';
const SNAPSHOT = 'demo';
/** A guest that never flushes (v86's IDE has no FLUSH CACHE of its own) loses nothing older. */
const FLUSH_MS = 5000;

/** A drive of the worker: open already, or a -drive string or DriveSpec to open at boot. */
export type BootDrive = DriveHandle | string | DriveSpec;

/** The disks of a boot; the machine closes them when it stops. */
export interface BootDisks {
  /** The IDE hard disk; default: the test guest's overlay; null: none. */
  readonly hda?: BootDrive | null;
  /** A read-only medium in the IDE CD-ROM (SeaBIOS boots from it when there is no hard disk). */
  readonly cdrom?: BootDrive;
  /** A disk in the first floppy drive (SeaBIOS boots it when there is no hard disk). */
  readonly fda?: BootDrive;
  /** Data disks on virtio-blk (the guest's vda, vdb, ...). */
  readonly virtio?: readonly BootDrive[];
}

interface Session {
  readonly machine: DriveMachine;
  readonly drives: DriveHandle[];
  readonly flusher: ReturnType<typeof setInterval>;
}

export class GuestPanel {
  private session: Session | undefined;
  private busy = false;
  private readonly overlay: StoredImageRef = keptRef(keptStorage(), 'demo/guest.qcow2');
  private readonly baseUrl = new URL('guest/manifest.json', document.baseURI).href;
  private readonly state = byId('machine-state');
  private readonly buttons = {
    boot: byId<HTMLButtonElement>('boot'),
    stop: byId<HTMLButtonElement>('stop'),
    reset: byId<HTMLButtonElement>('reset'),
    save: byId<HTMLButtonElement>('savevm'),
    restore: byId<HTMLButtonElement>('loadvm'),
  };

  constructor(
    private readonly app: App,
    private readonly terminal: Terminal,
  ) {
    this.buttons.boot.addEventListener('click', () => void this.bootWith({}));
    this.buttons.stop.addEventListener('click', () => void this.guard(() => this.stop()));
    this.buttons.reset.addEventListener('click', () => void this.reset());
    this.buttons.save.addEventListener(
      'click',
      () => void this.hmp('Saving the machine state', `savevm ${SNAPSHOT}`),
    );
    this.buttons.restore.addEventListener(
      'click',
      () => void this.hmp('Restoring the machine state', `loadvm ${SNAPSHOT}`),
    );
    // Best effort: what the guest wrote since the last flush reaches the storage before a reload.
    addEventListener('pagehide', () => this.session?.drives.forEach((d) => void d.flush()));
    this.sync();
  }

  /** Stops any running machine and boots one with `disks` (each default where not given). */
  async bootWith(disks: BootDisks): Promise<void> {
    await this.guard(async () => {
      await this.stop();
      const progress = new Progress(byId('machine-progress'), 'Opening the disks…');
      try {
        await this.start(disks, progress);
      } catch (err) {
        showError('The machine could not start', err);
        await this.stop();
      } finally {
        progress.done();
      }
    });
  }

  private async start(disks: BootDisks, progress: Progress): Promise<void> {
    const client = this.app.client;
    const drives: DriveHandle[] = [];
    const ownGuest = disks.hda === undefined;
    const open = async (d: BootDrive) => {
      const handle = d instanceof DriveHandle ? d : await client.addDrive(d);
      drives.push(handle);
      return handle;
    };
    let hda: DriveHandle | undefined;
    let cdrom: DriveHandle | undefined;
    let fda: DriveHandle | undefined;
    const virtio: DriveHandle[] = [];
    try {
      const hdaSpec = ownGuest ? await this.guestDrive(progress) : disks.hda;
      if (hdaSpec) hda = await open(hdaSpec);
      if (disks.cdrom) cdrom = await open(disks.cdrom);
      if (disks.fda) fda = await open(disks.fda);
      for (const spec of disks.virtio ?? []) virtio.push(await open(spec));
    } catch (err) {
      for (const drive of drives) await drive.close();
      throw err;
    }
    if (ownGuest) {
      await writeGuestControl(driveBackend(hda!), { mode: 'shell' });
      touch(this.overlay);
    }
    progress.label('Starting the emulator…');
    const machine = await bootFromDrives(client, {
      hda,
      cdrom,
      fda,
      virtio,
      memorySize: MEMORY,
      screenContainer: byId('screen'),
    });
    const flusher = setInterval(() => drives.forEach((d) => void d.flush().catch(() => {})), FLUSH_MS);
    this.session = { machine, drives, flusher };
    this.terminal.attach(machine);
    const devices = [hda && 'hda', cdrom && 'cdrom', fda && 'fda', `virtio=${virtio.length}`]
      .filter(Boolean)
      .join(' ');
    await client.attachMachine(`v86 memory=${MEMORY >> 20}M ${devices}`, {
      pause: () => machine.pause(),
      resume: () => machine.resume(),
      saveState: async () => new Uint8Array(await machine.emulator.save_state()),
      restoreState: async (state) => machine.emulator.restore_state(state.slice().buffer),
    });
    this.state.textContent = 'Booting…';
    void machine.serial.waitFor(/blockgraph guest shell|login:|# $/, 600_000).then(
      () => this.session?.machine === machine && (this.state.textContent = 'Running: type in the terminal'),
      () => {},
    );
    this.app.changed();
  }

  /** The test guest's drive: its overlay (made on first use) over the published base. */
  private async guestDrive(progress: Progress): Promise<DriveSpec> {
    const client = this.app.client;
    const base = {
      driver: 'qcow2',
      'read-only': true,
      file: { driver: 'http', layout: 'chunked', url: this.baseUrl },
    };
    const nodes =
      await client.execute<{ 'node-name': string; image: { 'virtual-size': number } }[]>(
        'query-named-block-nodes',
      );
    let baseNode = nodes.find((n) => n['node-name'] === BASE_NODE);
    if (!baseNode) {
      progress.label('Fetching the guest image header…');
      await client.execute('blockdev-add', { ...base, 'node-name': BASE_NODE });
      baseNode = (await client.execute<typeof nodes>('query-named-block-nodes')).find(
        (n) => n['node-name'] === BASE_NODE,
      )!;
    }
    if (!(await isKept(client, this.overlay))) {
      progress.label('Creating the overlay in this browser…');
      // The header names the base in full (json:), so the overlay alone opens again (export).
      await createKept(client, this.overlay, {
        format: 'qcow2',
        size: baseNode.image['virtual-size'],
        backingFile: `json:${JSON.stringify(base)}`,
      });
    }
    const node = {
      driver: 'qcow2',
      'node-name': OVERLAY_NODE,
      file: protocolOptions(this.overlay),
      backing: BASE_NODE,
    };
    return { id: 'hda', node };
  }

  /** Stops the machine and closes its drives (flushing them). */
  async stop(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    clearInterval(session.flusher);
    this.terminal.detach();
    await session.machine.destroy();
    await this.app.client.attachMachine('', null);
    for (const drive of session.drives)
      await drive.close().catch((err) => showError('A disk did not close cleanly', err));
    this.state.textContent = 'Stopped';
    this.app.changed();
  }

  private async reset(): Promise<void> {
    const ok = await confirmDialog(
      'Reset the guest disk? Everything written in the guest and its saved state are deleted.',
      'Reset disk',
    );
    if (!ok) return;
    await this.guard(async () => {
      await this.stop();
      await attempt('The disk could not be reset', () =>
        this.app.storage(async () => {
          if (await isKept(this.app.client, this.overlay))
            await this.app.client.deleteStoredImage(this.overlay);
        }),
      );
      this.state.textContent = 'Disk reset: the next boot starts from the published image';
      this.app.changed();
    });
  }

  private async hmp(what: string, command: string): Promise<void> {
    await this.guard(async () => {
      const progress = new Progress(byId('machine-progress'), `${what}…`);
      try {
        const out = await this.app.client.execute<string>('human-monitor-command', {
          'command-line': command,
        });
        // HMP reports failures as its output text, not as a QMP error.
        if (out.trim()) showError(`${what} failed`, out.trim());
        else this.state.textContent = `${what}: done`;
      } catch (err) {
        showError(`${what} failed`, err);
      } finally {
        progress.done();
      }
      this.app.changed();
    });
  }

  /** Runs `fn` with the buttons disabled, so two operations never interleave. */
  private async guard(fn: () => Promise<void>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.sync();
    try {
      await fn();
    } finally {
      this.busy = false;
      this.sync();
    }
  }

  private sync(): void {
    const running = this.session !== undefined;
    this.buttons.boot.disabled = this.busy;
    this.buttons.stop.disabled = this.busy || !running;
    this.buttons.reset.disabled = this.busy;
    this.buttons.save.disabled = this.busy || !running;
    this.buttons.restore.disabled = this.busy || !running;
  }
}
