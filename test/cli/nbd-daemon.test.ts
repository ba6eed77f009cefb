/**
 * `blockgraph daemon` as qemu-storage-daemon: --blockdev, --nbd-server, --export and QMP on a
 * Unix socket chardev; QEMU's tools read and write the exports; the QMP export commands answer
 * with the shapes and texts qemu-system-x86_64 7.2 gave for the same requests.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/daemon.ts';
import { qemu, qemuAsync } from '../nbd/qemu-nbd.ts';
import { runOurs } from './helpers.ts';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-nbd-daemon-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A QMP client on a Unix socket: `cmd` returns the next non-event message. */
async function qmpClient(path: string) {
  const sock = connect({ path });
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    for (let i; (i = buf.indexOf('\r\n')) >= 0; buf = buf.slice(i + 2))
      lines.push(JSON.parse(buf.slice(0, i)));
    waiters.splice(0).forEach((w) => w());
  });
  const next = async (): Promise<Record<string, unknown>> => {
    while (lines.length === 0) await new Promise<void>((r) => waiters.push(r));
    return lines.shift()!;
  };
  const events: Record<string, unknown>[] = [];
  const reply = async () => {
    for (;;) {
      const m = await next();
      if ('event' in m) events.push(m);
      else return m;
    }
  };
  await next(); // greeting
  const cmd = async (execute: string, args?: Record<string, unknown>) => {
    sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }));
    return reply();
  };
  await cmd('qmp_capabilities');
  return { cmd, events, close: () => sock.destroy() };
}

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 800; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ path });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no socket at ${path}`);
}

/**
 * Starts `blockgraph daemon` with `args` plus a QMP monitor on the Unix socket `qmpSock`; resolves
 * once the monitor listens (or rejects with the daemon's stderr if it exits first).
 */
async function startDaemon(qmpSock: string, args: string[]) {
  const daemon = runOurs(run, [
    ...args,
    '--chardev',
    `socket,id=c0,path=${qmpSock},server=on,wait=off`,
    '--monitor',
    'chardev=c0',
  ]);
  await Promise.race([waitForSocket(qmpSock), daemon.then((o) => Promise.reject(new Error(o.stderr)))]);
  return { daemon, qmp: await qmpClient(qmpSock) };
}

describe('blockgraph daemon with NBD exports', () => {
  it('serves --export to qemu-img and qemu-io and manages exports over QMP', async () => {
    const image = join(dir, 'd.qcow2');
    qemu('qemu-img', ['create', '-q', '-f', 'qcow2', image, '2M']);
    qemu('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 64k', image]);
    const qmpSock = join(dir, 'qmp.sock');
    const nbdSock = join(dir, 'nbd.sock');
    const { daemon, qmp } = await startDaemon(qmpSock, [
      '--blockdev',
      `driver=file,node-name=f0,filename=${image}`,
      '--blockdev',
      'driver=qcow2,node-name=disk,file=f0',
      '--blockdev',
      'driver=null-co,node-name=n0,size=1048576',
      '--nbd-server',
      `addr.type=unix,addr.path=${nbdSock}`,
      '--export',
      'type=nbd,id=e0,node-name=disk,name=disk,writable=on',
    ]);
    const uri = `nbd+unix:///disk?socket=${nbdSock}`;

    const w = await qemuAsync('qemu-io', ['-f', 'raw', '-c', 'write -P 0x33 1M 64k', uri]);
    expect(w.stderr).toBe('');
    const r = await qemuAsync('qemu-io', [
      '-f',
      'raw',
      '-c',
      'read -P 0x5a 0 64k',
      '-c',
      'read -P 0x33 1M 64k',
      uri,
    ]);
    expect(r.stdout).not.toMatch(/Pattern verification failed/);

    expect(await qmp.cmd('nbd-server-start', { addr: { type: 'unix', data: { path: nbdSock } } })).toEqual({
      error: { class: 'GenericError', desc: 'NBD server already running' },
    });
    expect(await qmp.cmd('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n0' })).toEqual({
      error: { class: 'GenericError', desc: "Block export id 'e0' is already in use" },
    });
    expect(await qmp.cmd('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'nx' })).toEqual({
      error: { class: 'GenericError', desc: "Cannot find device='' nor node-name='nx'" },
    });
    expect(
      await qmp.cmd('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'n0', name: 'disk' }),
    ).toEqual({
      error: { class: 'GenericError', desc: "NBD server already has export named 'disk'" },
    });
    expect(await qmp.cmd('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'n0', bogus: 1 })).toEqual(
      {
        error: { class: 'GenericError', desc: "Parameter 'bogus' is unexpected" },
      },
    );
    expect(await qmp.cmd('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'n0' })).toEqual({
      return: {},
    });
    expect(await qmp.cmd('query-block-exports')).toEqual({
      return: [
        { id: 'e1', type: 'nbd', 'node-name': 'n0', 'shutting-down': false },
        { id: 'e0', type: 'nbd', 'node-name': 'disk', 'shutting-down': false },
      ],
    });
    const info = await qemuAsync('qemu-img', ['info', '--output=json', `nbd+unix:///n0?socket=${nbdSock}`]);
    expect(JSON.parse(info.stdout)['virtual-size']).toBe(1 << 20);
    expect(await qmp.cmd('block-export-del', { id: 'nope' })).toEqual({
      error: { class: 'GenericError', desc: "Export 'nope' is not found" },
    });
    expect(await qmp.cmd('block-export-del', { id: 'e1' })).toEqual({ return: {} });
    expect(qmp.events.map((e) => [e.event, e.data])).toEqual([['BLOCK_EXPORT_DELETED', { id: 'e1' }]]);
    expect(await qmp.cmd('nbd-server-stop')).toEqual({ return: {} });
    expect(await qmp.cmd('query-block-exports')).toEqual({ return: [] });
    expect(await qmp.cmd('nbd-server-stop')).toEqual({
      error: { class: 'GenericError', desc: 'NBD server not running' },
    });
    expect(await qmp.cmd('block-export-add', { type: 'nbd', id: 'e2', 'node-name': 'n0' })).toEqual({
      error: { class: 'GenericError', desc: 'NBD server not running' },
    });
    expect(await qmp.cmd('quit')).toEqual({ return: {} });
    qmp.close();
    expect((await daemon).status).toBe(0);
    expect(qemu('qemu-img', ['check', image])).toMatch(/No errors were found/);
    qemu('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x33 1M 64k', image]);
  });

  it('fleecing: qemu-img convert of a snapshot-access export equals the disk at the fleece instant', async () => {
    // The disk: 4 MiB of distinct bytes; its copy is the content at the fleece instant.
    const disk = join(dir, 'fleece.raw');
    writeFileSync(
      disk,
      new Uint8Array(4 << 20).map((_, i) => (i * 31 + (i >> 12)) & 255),
    );
    const atFleece = join(dir, 'fleece-at-start.raw');
    copyFileSync(disk, atFleece);
    const qmpSock = join(dir, 'fq.sock');
    const nbdSock = join(dir, 'fn.sock');
    const { daemon, qmp } = await startDaemon(qmpSock, [
      '--blockdev',
      `driver=file,node-name=disk,filename=${disk}`,
      '--blockdev',
      'driver=memory,node-name=tmp,size=4194304',
      '--blockdev',
      'driver=copy-before-write,node-name=cbw,file=disk,target=tmp',
      '--blockdev',
      'driver=snapshot-access,node-name=acc,file=cbw',
      '--nbd-server',
      `addr.type=unix,addr.path=${nbdSock}`,
      '--export',
      'type=nbd,id=drive,node-name=cbw,name=drive,writable=on',
      '--export',
      'type=nbd,id=fleece,node-name=acc,name=fleece',
    ]);
    const drive = `nbd+unix:///drive?socket=${nbdSock}`;
    // One write surely before the copy starts, so the view must come from the copy-before-write
    // target for at least that cluster.
    expect((await qemuAsync('qemu-io', ['-f', 'raw', '-c', 'write -P 0xee 3104k 32k', drive])).stderr).toBe(
      '',
    );
    // The drive's write loop (qemu-io over the writable export of the filter) and the copy of
    // the fleecing view run at the same time.
    const writes = Array.from({ length: 64 }, (_, i) => `write -P ${i + 1} ${i * 64}k 32k`);
    const copy = join(dir, 'fleece-copy.raw');
    const [w, c] = await Promise.all([
      qemuAsync('qemu-io', [
        '-f',
        'raw',
        ...writes.flatMap((cmd) => ['-c', cmd]),
        `nbd+unix:///drive?socket=${nbdSock}`,
      ]),
      qemuAsync('qemu-img', [
        'convert',
        '-f',
        'raw',
        '-O',
        'raw',
        `nbd+unix:///fleece?socket=${nbdSock}`,
        copy,
      ]),
    ]);
    expect([w.stderr, c.stderr]).toEqual(['', '']);
    expect(await qmp.cmd('quit')).toEqual({ return: {} });
    qmp.close();
    expect((await daemon).status).toBe(0);
    expect(readFileSync(copy).equals(readFileSync(atFleece))).toBe(true);
    // The writes reached the disk: it is not what the copy shows any more.
    expect(readFileSync(disk).equals(readFileSync(atFleece))).toBe(false);
    expect(readFileSync(disk)[63 * 65536]).toBe(64);
    expect(readFileSync(disk)[3104 * 1024]).toBe(0xee);
  });

  it("refuses bad --export and --nbd-server options with qemu-storage-daemon's texts", async () => {
    const ours = (...args: string[]) => runOurs(run, args).then((o) => o.stderr);
    expect(await ours('--export', 'type=nbd,id=e0,node-name=n0')).toBe(
      "blockgraph: --export type=nbd,id=e0,node-name=n0: Cannot find device='' nor node-name='n0'\n",
    );
    expect(await ours('--blockdev', 'null-co,node-name=n0', '--export', 'type=nbd,id=e0,node-name=n0')).toBe(
      'blockgraph: --export type=nbd,id=e0,node-name=n0: NBD server not running\n',
    );
    expect(await ours('--nbd-server', 'addr.type=inet,addr.host=127.0.0.1')).toBe(
      "blockgraph: --nbd-server addr.type=inet,addr.host=127.0.0.1: Parameter 'addr.port' is missing\n",
    );
  });
});
