/**
 * The guest frontends end to end: `blockgraph boot` with the Debian test guest, driven over its
 * serial console and a QMP socket. Each boot costs ~11 s on a quiet machine, so each one checks
 * several things: flushes and the CD-ROM (check mode), CD-ROM media change (shell mode), guest-
 * visible write errors (ioerror mode, werror=report), and the boot counter on a qcow2 across two
 * boots, the second stopping on a write error (werror=stop) until `cont`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { readBootCounter, writeGuestControl, type GuestControl } from '../../src/frontends/guest-control.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

const ROOT = join(import.meta.dirname, '../..');
const GUEST = join(ROOT, 'guest/out/guest.raw');
/** A loaded CI machine boots several times slower than a quiet one. */
const BOOT_TIMEOUT = 300_000;

interface GuestManifest {
  counter: { offset: number };
  ioerror: { offset: number };
}

/** A running `blockgraph boot`: its serial output, and a QMP connection. */
class Boot {
  readonly child: ChildProcess;
  output = '';
  stderr = '';
  readonly events: { event: string; data: Record<string, unknown> }[] = [];
  private qmpSocket!: Socket;
  private qmpBuffer = '';
  private replies: ((reply: Record<string, unknown>) => void)[] = [];
  private waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], socket: string) {
    this.child = spawn(
      process.execPath,
      [join(ROOT, 'bin/blockgraph.js'), 'boot', ...args, '-qmp', `unix:${socket},server=on,wait=on`],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  /** Connects to the QMP socket (the machine starts then: wait=on) and negotiates. */
  async connectQmp(socket: string): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        this.qmpSocket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(socket, () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.qmpSocket.setEncoding('utf8');
    const greeting = new Promise<Record<string, unknown>>((resolve) => this.replies.push(resolve));
    this.qmpSocket.on('data', (chunk: string) => this.onQmp(chunk));
    await greeting;
    await this.qmp('qmp_capabilities');
  }

  qmp(execute: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = new Promise<Record<string, unknown>>((resolve) => this.replies.push(resolve));
    this.qmpSocket.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    return reply;
  }

  /** Resolves with the first match of `re` in the serial output from `from` on. */
  async waitFor(re: RegExp, from = 0): Promise<RegExpExecArray> {
    for (;;) {
      const m = re.exec(this.output.slice(from));
      if (m) return m;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /**
   * Runs a shell command on the guest console (shell mode, prompt shown); resolves with its
   * output. The markers around it are computed by the shell, so the echoed command line (which
   * the console may wrap anywhere) cannot match them.
   */
  async shell(command: string): Promise<string> {
    const mark = `M${Math.random().toString(36).slice(2, 8)}`;
    const from = this.output.length;
    this.child.stdin!.write(`echo ${mark}-$((40+1)); ${command}; echo ${mark}-$((40+2))\n`);
    const m = await this.waitFor(new RegExp(`${mark}-41\\r?\\n([\\s\\S]*?)${mark}-42\\r?\\n`), from);
    return m[1]!;
  }

  async quit(): Promise<number | null> {
    await this.qmp('quit');
    return this.exited;
  }

  private onQmp(chunk: string): void {
    this.qmpBuffer += chunk;
    let nl: number;
    while ((nl = this.qmpBuffer.indexOf('\n')) >= 0) {
      const line = this.qmpBuffer.slice(0, nl).trim();
      this.qmpBuffer = this.qmpBuffer.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (typeof msg.event === 'string') this.events.push(msg as Boot['events'][number]);
      else this.replies.shift()?.(msg);
    }
  }
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

describe('blockgraph boot: IDE, CD-ROM and the guest control block', () => {
  let dir: string;
  let manifest: GuestManifest;
  let cd1: Uint8Array;
  let cd2: Uint8Array;
  const boots: Boot[] = [];

  /** Writes the control block into an image (any format) through the graph. */
  async function control(image: string, format: string, options: GuestControl): Promise<void> {
    await withDisk(image, format, (disk) => writeGuestControl(disk, options));
  }

  async function withDisk<T>(image: string, format: string, fn: (disk: BlockBackend) => Promise<T>) {
    const graph = new BlockGraph();
    const backend = new BlockBackend(graph, 'ctl');
    backend.insert(await graph.open({ driver: format, file: { driver: 'file', filename: image } }));
    try {
      return await fn(backend);
    } finally {
      await backend.flush();
      await backend.close();
    }
  }

  async function start(args: string[]): Promise<Boot> {
    const socket = join(dir, `qmp${boots.length}.sock`);
    const boot = new Boot(args, socket);
    boots.push(boot);
    await boot.connectQmp(socket);
    return boot;
  }

  beforeAll(async () => {
    await promisify(execFile)('bash', [join(ROOT, 'scripts/build-guest.sh')], { timeout: 300_000 });
    manifest = JSON.parse(await readFile(join(ROOT, 'guest/out/guest.json'), 'utf8')) as GuestManifest;
    dir = await mkdtemp(join(tmpdir(), 'blockgraph-frontends-'));
    // CD images need no file system: the guest reads /dev/sr0 raw. 2048-byte sectors, distinct.
    cd1 = new Uint8Array(64 * 2048).map((_, i) => (i * 7) & 255);
    cd2 = new Uint8Array(96 * 2048).map((_, i) => (i * 13 + 1) & 255);
    await writeFile(join(dir, 'cd1.iso'), cd1);
    await writeFile(join(dir, 'cd2.iso'), cd2);
  }, 300_000);

  afterAll(async () => {
    for (const boot of boots) boot.child.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    'check mode: guest fsyncs reach flush(), the CD-ROM reads back, query-block shows both drives',
    async () => {
      const image = join(dir, 'check.raw');
      await copyFile(GUEST, image);
      const boot = await start(['-drive', `file=${image},format=raw,if=ide`, '-cdrom', join(dir, 'cd1.iso')]);
      await boot.waitFor(/BLOCKGRAPH-GUEST-DONE pass=\d+ fail=\d+/);
      expect(boot.output).not.toMatch(/BLOCKGRAPH-CHECK \S+ FAIL/);
      expect(boot.output).toContain(`BLOCKGRAPH-CHECK cdrom OK sha256=${sha256(cd1)} bytes=${cd1.length}`);
      const stats = (await boot.qmp('query-blockstats')).return as {
        device: string;
        stats: Record<string, number>;
      }[];
      const hd = stats.find((s) => s.device === 'ide0-hd0')!.stats;
      // conv=fsync after every O_DIRECT write: FLUSH CACHE from the guest, through the backend.
      expect(hd.flush_operations).toBeGreaterThanOrEqual(9);
      const block = (await boot.qmp('query-block')).return as Record<string, unknown>[];
      expect(block.map((b) => [b.device, b.removable, b.tray_open])).toEqual([
        ['ide0-hd0', false, undefined],
        ['ide1-cd0', true, false],
      ]);
      expect(await boot.quit()).toBe(0);
    },
    BOOT_TIMEOUT,
  );

  it(
    'shell mode: blockdev-change-medium and eject are seen by the guest on /dev/sr0',
    async () => {
      const image = join(dir, 'shell.raw');
      await copyFile(GUEST, image);
      await control(image, 'raw', { mode: 'shell' });
      const boot = await start([
        '-hda',
        image,
        '-drive',
        `file=${join(dir, 'cd1.iso')},if=ide,index=2,media=cdrom`,
      ]);
      await boot.waitFor(/blockgraph guest shell[^]*\/ # /);
      expect(await boot.shell('sha256sum /dev/sr0')).toContain(sha256(cd1));

      expect(
        await boot.qmp('blockdev-change-medium', {
          device: 'ide1-cd0',
          filename: join(dir, 'cd2.iso'),
          format: 'raw',
        }),
      ).toEqual({ return: {} });
      expect(boot.events.filter((e) => e.event === 'DEVICE_TRAY_MOVED').map((e) => e.data)).toEqual([
        { device: 'ide1-cd0', 'tray-open': true, id: 'ide1-cd0' },
        { device: 'ide1-cd0', 'tray-open': false, id: 'ide1-cd0' },
      ]);
      // The first access after a change reports it (UNIT ATTENTION); the next reads the new disc.
      await boot.shell('dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null');
      const second = await boot.shell('sha256sum /dev/sr0; blockdev --getsize64 /dev/sr0');
      expect(second).toContain(sha256(cd2));
      expect(second).toContain(String(cd2.length));

      expect(await boot.qmp('eject', { device: 'ide1-cd0' })).toEqual({ return: {} });
      const block = (await boot.qmp('query-block')).return as Record<string, unknown>[];
      expect(block[1]).toMatchObject({ device: 'ide1-cd0', tray_open: true });
      expect(block[1]!.inserted).toBeUndefined();
      await boot.shell('dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null');
      expect(await boot.shell('dd if=/dev/sr0 of=/dev/null bs=2048 count=1')).toMatch(/No medium found/);
      expect(await boot.quit()).toBe(0);
    },
    BOOT_TIMEOUT,
  );

  it(
    'ioerror mode: a write failed by blkdebug with werror=report is an I/O error in the guest',
    async () => {
      const image = join(dir, 'ioerror.raw');
      await copyFile(GUEST, image);
      await control(image, 'raw', { mode: 'ioerror' });
      const sector = manifest.ioerror.offset / 512;
      const drive =
        `driver=blkdebug,image.driver=raw,image.file.driver=file,image.file.filename=${image},` +
        `inject-error.0.event=pwritev,inject-error.0.iotype=write,inject-error.0.sector=${sector},` +
        'if=ide,werror=report,id=hd0';
      const boot = await start(['-drive', drive]);
      await boot.waitFor(/BLOCKGRAPH-GUEST-DONE/);
      expect(boot.output).toMatch(/BLOCKGRAPH-CHECK ioerror OK exit=1 .*Input\/output error/);
      const errors = boot.events.filter((e) => e.event === 'BLOCK_IO_ERROR');
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]!.data).toMatchObject({ device: 'hd0', operation: 'write', action: 'report' });
      expect((await boot.qmp('query-status')).return).toMatchObject({ status: 'running' });
      expect(await boot.quit()).toBe(0);
    },
    BOOT_TIMEOUT,
  );

  it(
    'persist mode on a qcow2: counter 1, then 2 after a werror=stop pause that cont resumes',
    async () => {
      const image = join(dir, 'persist.qcow2');
      await promisify(execFile)('qemu-img', ['convert', '-O', 'qcow2', GUEST, image]);
      await control(image, 'qcow2', { mode: 'persist' });

      const first = await start(['-drive', `file=${image},format=qcow2,if=ide`]);
      await first.waitFor(/BLOCKGRAPH-GUEST-DONE/);
      expect(first.output).toMatch(/BLOCKGRAPH-CHECK persist OK 1\r?\n/);
      expect(await first.quit()).toBe(0);
      expect(await withDisk(image, 'qcow2', readBootCounter)).toBe(1);

      const sector = manifest.counter.offset / 512;
      const drive =
        `driver=blkdebug,image.driver=qcow2,image.file.driver=file,image.file.filename=${image},` +
        `inject-error.0.event=pwritev,inject-error.0.iotype=write,inject-error.0.sector=${sector},` +
        'inject-error.0.once=on,if=ide,werror=stop,id=hd0';
      const second = await start(['-drive', drive]);
      while (!second.events.some((e) => e.event === 'STOP')) await new Promise((r) => setTimeout(r, 100));
      expect(second.events.find((e) => e.event === 'BLOCK_IO_ERROR')!.data).toMatchObject({
        device: 'hd0',
        operation: 'write',
        action: 'stop',
      });
      expect((await second.qmp('query-status')).return).toMatchObject({ running: false, status: 'io-error' });
      expect(second.output).not.toContain('BLOCKGRAPH-CHECK persist');
      expect(await second.qmp('cont')).toEqual({ return: {} });
      await second.waitFor(/BLOCKGRAPH-GUEST-DONE/);
      expect(second.output).toMatch(/BLOCKGRAPH-CHECK persist OK 2\r?\n/);
      expect(await second.quit()).toBe(0);
      expect(await withDisk(image, 'qcow2', readBootCounter)).toBe(2);
    },
    2 * BOOT_TIMEOUT,
  );
});
