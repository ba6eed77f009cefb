/**
 * stream (also of an HTTP-based disk), commit and mirror with a guest writing all along: the
 * result equals the guest's shadow copy, qemu-img check/compare accept the images, progress ends
 * at total, a failing target leaves the graph as it was, and a node the command cannot make
 * writable is the command's error.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { backingOf } from '../../src/jobs/chain.ts';
import { tempDir } from '../cli/helpers.ts';
import { TestHttpServer } from '../support/http-server.ts';
import { differs, drive, readAll, session, statuses, writeLoop, type Message } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const MiB = 1 << 20;
const SIZE = 4 * MiB;

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** base (pattern 1 in the first MiB) <- mid (pattern 2 in the second) <- top, all qcow2. */
function chain(prefix: string): Record<string, string> {
  const p = (n: string) => tmp.path(`${prefix}-${n}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', p('base'), String(SIZE));
  spawnSync('qemu-io', ['-c', 'write -P 1 0 1M', p('base')]);
  qemuImg('create', '-q', '-f', 'qcow2', '-b', p('base'), '-F', 'qcow2', p('mid'));
  spawnSync('qemu-io', ['-c', 'write -P 2 1M 1M', p('mid')]);
  qemuImg('create', '-q', '-f', 'qcow2', '-b', p('mid'), '-F', 'qcow2', p('top'));
  return { base: p('base'), mid: p('mid'), top: p('top') };
}

/** Opens the chain as three blockdev-add nodes (base and mid writable, as commit needs). */
async function openChain(
  execute: (n: string, a?: Message) => Promise<Message>,
  files: Record<string, string>,
) {
  const add = (name: string, backing: string | null) =>
    execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': name,
      backing,
      file: { driver: 'file', filename: files[name] },
    });
  expect(await add('base', null)).toEqual({ return: {} });
  expect(await add('mid', 'base')).toEqual({ return: {} });
  expect(await add('top', 'mid')).toEqual({ return: {} });
}

/** The raw image of `bytes`, for qemu-img compare. */
function rawOf(name: string, bytes: Uint8Array): string {
  const path = tmp.path(name);
  writeFileSync(path, bytes);
  return path;
}

describe('block jobs under guest writes', () => {
  it('block-stream copies the chain into top and drops the backing file', async () => {
    const files = chain('s');
    const s = await session();
    await openChain(s.execute, files);
    const guest = drive(s.graph, 'd0', 'top');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow);
    expect(await s.execute('block-stream', { 'job-id': 's1', device: 'top', speed: 8 * MiB })).toEqual({
      return: {},
    });
    const done = await s.waitEvent('BLOCK_JOB_COMPLETED');
    await loop.stop();
    expect(loop.writes).toBeGreaterThan(5);
    expect(done).toEqual({ device: 's1', len: SIZE, offset: SIZE, speed: 8 * MiB, type: 'stream' });
    expect(statuses(s.events, 's1')).toEqual([
      'created',
      'running',
      'waiting',
      'pending',
      'concluded',
      'null',
    ]);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    await s.execute('blockdev-del', { 'node-name': 'top' });
    expect(JSON.parse(qemuImg('info', '--output=json', files.top))['backing-filename']).toBeUndefined();
    qemuImg('check', files.top);
    qemuImg('compare', '-f', 'qcow2', '-F', 'raw', files.top, rawOf('s.raw', shadow));
  });

  it('a mirror under continuous writes gets ready and pivots without losing a write', async () => {
    const files = chain('m');
    qemuImg('create', '-q', '-f', 'qcow2', tmp.path('m-target.qcow2'), String(SIZE));
    const s = await session();
    await openChain(s.execute, files);
    await s.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'tgt',
      file: { driver: 'file', filename: tmp.path('m-target.qcow2') },
    });
    const guest = drive(s.graph, 'd0', 'top');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 7);
    // write-blocking: each guest write reaches the target too, so a guest writing flat out
    // cannot keep the mirror from converging (in the background mode it could).
    const mirror = { 'job-id': 'm1', device: 'd0', target: 'tgt', sync: 'full', 'buf-size': 256 * 1024 };
    expect(await s.execute('blockdev-mirror', { ...mirror, 'copy-mode': 'write-blocking' })).toEqual({
      return: {},
    });
    await s.waitEvent('BLOCK_JOB_READY');
    const before = loop.writes;
    await new Promise((r) => setTimeout(r, 50));
    expect(await s.execute('job-complete', { id: 'm1' })).toEqual({ return: {} });
    const done = await s.waitEvent('BLOCK_JOB_COMPLETED');
    expect(done.offset).toBe(done.len);
    expect(guest.root!.nodeName).toBe('tgt');
    // The guest keeps writing, now to the target.
    await new Promise((r) => setTimeout(r, 30));
    await loop.stop();
    expect(loop.writes).toBeGreaterThan(before);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    await s.execute('blockdev-del', { 'node-name': 'tgt' });
    qemuImg('check', tmp.path('m-target.qcow2'));
    qemuImg('compare', '-f', 'qcow2', '-F', 'raw', tmp.path('m-target.qcow2'), rawOf('m.raw', shadow));
  });

  it('active block-commit goes ready and job-complete pivots the drive to the base', async () => {
    const files = chain('c');
    const s = await session();
    await openChain(s.execute, files);
    const guest = drive(s.graph, 'd0', 'top');
    const shadow = await readAll(guest);
    // Active commit copies in the background: the guest leaves it a few ms between writes.
    const loop = writeLoop(guest, shadow, 3, 3);
    expect(await s.execute('block-commit', { 'job-id': 'c1', device: 'd0' })).toEqual({ return: {} });
    await s.waitEvent('BLOCK_JOB_READY', (d) => d.type === 'commit');
    await s.execute('block-job-complete', { device: 'c1' });
    await s.waitEvent('BLOCK_JOB_COMPLETED');
    await loop.stop();
    expect(guest.root!.nodeName).toBe('base');
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    for (const n of ['top', 'mid', 'base']) await s.execute('blockdev-del', { 'node-name': n });
    qemuImg('check', files.base);
    qemuImg('compare', '-f', 'qcow2', '-F', 'raw', files.base, rawOf('c.raw', shadow));
  });

  it('intermediate block-commit folds mid into base and top takes base as backing', async () => {
    const files = chain('i');
    spawnSync('qemu-io', ['-c', 'write -P 3 2M 1M', files.top]);
    const s = await session();
    await openChain(s.execute, files);
    const guest = drive(s.graph, 'd0', 'top');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 5);
    await s.execute('block-commit', { 'job-id': 'c2', device: 'd0', 'top-node': 'mid', 'base-node': 'base' });
    const done = await s.waitEvent('BLOCK_JOB_COMPLETED');
    await loop.stop();
    expect(done).toMatchObject({ type: 'commit', len: SIZE, offset: SIZE });
    expect(done.error).toBeUndefined();
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    for (const n of ['top', 'mid', 'base']) await s.execute('blockdev-del', { 'node-name': n });
    expect(JSON.parse(qemuImg('info', '--output=json', files.top))['backing-filename']).toBe(files.base);
    qemuImg('check', files.top);
    qemuImg('compare', '-f', 'qcow2', '-F', 'raw', files.top, rawOf('i.raw', shadow));
  });

  it('commit into a base opened read-only from the image header reopens it for the job', async () => {
    const files = chain('h');
    spawnSync('qemu-io', ['-c', 'write -P 3 2M 1M', files.top]);
    const s = await session();
    const fileOf = (name: string) => ({ driver: 'file', filename: files[name] });
    expect(
      await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'top', file: fileOf('top') }),
    ).toEqual({
      return: {},
    });
    const mid = backingOf(s.graph.lookup('top'))!;
    const base = backingOf(mid)!;
    expect([mid.readOnly, base.readOnly]).toEqual([true, true]);
    const guest = drive(s.graph, 'd0', 'top');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 11, 3);
    // Intermediate: base is writable while mid is folded into it, read-only again afterwards.
    await s.execute('block-commit', { 'job-id': 'i', device: 'd0', 'top-node': mid.nodeName });
    expect(await s.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === 'i')).not.toHaveProperty('error');
    expect(backingOf(s.graph.lookup('top'))).toBe(base);
    expect(base.readOnly).toBe(true);
    // Active: the base becomes the drive's writable medium.
    await s.execute('block-commit', { 'job-id': 'a', device: 'd0' });
    await s.waitEvent('BLOCK_JOB_READY', (d) => d.device === 'a');
    await s.execute('job-complete', { id: 'a' });
    expect(await s.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === 'a')).not.toHaveProperty('error');
    await loop.stop();
    expect(guest.root).toBe(base);
    expect(base.readOnly).toBe(false);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    await s.execute('blockdev-del', { 'node-name': 'top' });
    qemuImg('check', files.base);
    qemuImg('compare', '-f', 'qcow2', '-F', 'raw', files.base, rawOf('h.raw', shadow));
  });

  it('block-stream makes an HTTP-based disk fully local while the guest writes', async () => {
    const server = await TestHttpServer.start();
    try {
      const base = new Uint8Array(SIZE).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
      const url = server.serveBytes('/base.raw', base);
      const top = tmp.path('web-top.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', top, String(SIZE));
      const s = await session();
      const web = { driver: 'raw', 'node-name': 'web', file: { driver: 'http', url } };
      const file = { driver: 'file', filename: top };
      await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'top', file, backing: web });
      const guest = drive(s.graph, 'd0', 'top');
      const shadow = await readAll(guest);
      expect(differs(shadow, base)).toBeUndefined();
      const loop = writeLoop(guest, shadow, 9);
      expect(await s.execute('block-stream', { 'job-id': 'w', device: 'top' })).toEqual({ return: {} });
      const done = await s.waitEvent('BLOCK_JOB_COMPLETED');
      await loop.stop();
      expect(loop.writes).toBeGreaterThan(5);
      expect(done).toEqual({ device: 'w', len: SIZE, offset: SIZE, speed: 0, type: 'stream' });
      // No backing left; the HTTP node is closed and nothing reads from the server any more.
      expect(backingOf(s.graph.lookup('top'))).toBeUndefined();
      expect(s.graph.nodes.has('web')).toBe(false);
      const requests = server.log.length;
      expect(differs(await readAll(guest), shadow)).toBeUndefined();
      expect(server.log.length).toBe(requests);
      await guest.close();
      await s.execute('blockdev-del', { 'node-name': 'top' });
      expect(JSON.parse(qemuImg('info', '--output=json', top))).not.toHaveProperty('backing-filename');
      qemuImg('check', top);
      qemuImg('compare', '-f', 'qcow2', '-F', 'raw', top, rawOf('web.raw', shadow));
    } finally {
      await server.close();
    }
  });

  it('a node that cannot be made writable is the command’s error, with QEMU 7.2’s events', async () => {
    const files = chain('ro');
    const s = await session();
    const file = (name: string) => ({ driver: 'file', filename: files[name] });
    // The base's file is a read-only node of its own: reopening base read-write cannot take it along.
    await s.execute('blockdev-add', { ...file('base'), 'node-name': 'bf', 'read-only': true });
    await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'b', file: 'bf', 'read-only': true });
    await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'm', file: file('mid'), backing: 'b' });
    await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 't', file: file('top'), backing: 'm' });
    const readOnly = { error: { class: 'GenericError', desc: 'Block node is read-only' } };
    // Captured from qemu-system-x86_64 7.2: intermediate commit creates its job first
    // (created, null); stream and active commit refuse before any job exists.
    const commands: [string, Message, string[]][] = [
      [
        'block-commit',
        { 'job-id': 'c', device: 't', 'top-node': 'm', 'base-node': 'b' },
        ['created', 'null'],
      ],
      ['block-stream', { 'job-id': 's', device: 'b' }, []],
      ['block-commit', { 'job-id': 'c2', device: 't', 'base-node': 'b' }, []],
    ];
    for (const [command, args, events] of commands) {
      expect(await s.execute(command, args)).toEqual(readOnly);
      expect(statuses(s.events, args['job-id'] as string)).toEqual(events);
    }
    expect(await s.execute('query-jobs')).toEqual({ return: [] });
    expect(s.graph.lookup('b').readOnly).toBe(true);
    expect(backingOf(s.graph.lookup('t'))!.nodeName).toBe('m');
  });

  it('a drain over a running job pauses it while it lasts, then it runs on', async () => {
    const s = await session();
    for (const name of ['src', 'tgt'])
      await s.execute('blockdev-add', { driver: 'memory', 'node-name': name, size: SIZE });
    // 64 KiB/s: the job spends its time asleep between 64 KiB copies, where a drain finds it.
    await s.execute('blockdev-mirror', {
      'job-id': 'd',
      device: 'src',
      target: 'tgt',
      sync: 'full',
      speed: 64 * 1024,
    });
    await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.status === 'running');
    await new Promise((r) => setTimeout(r, 20));
    await s.graph.drained([s.graph.lookup('src')], async () => {
      await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.status === 'paused');
      const [job] = (await s.execute('query-jobs')).return as Message[];
      expect(job).toMatchObject({ status: 'paused' });
    });
    await s.execute('block-job-set-speed', { device: 'd', speed: 0 });
    await s.waitEvent('BLOCK_JOB_READY');
    expect(statuses(s.events, 'd')).toEqual(['created', 'running', 'paused', 'running', 'ready']);
    // block-job-cancel without force ends a ready mirror successfully, without pivoting.
    await s.execute('block-job-cancel', { device: 'd' });
    expect(await s.waitEvent('BLOCK_JOB_COMPLETED')).toMatchObject({ offset: SIZE, len: SIZE });
    expect(s.graph.lookup('tgt').parents.length).toBe(0);
  });

  it('a target failing writes: BLOCK_JOB_ERROR, the job fails, the drive stays on its source', async () => {
    const s = await session();
    await s.execute('blockdev-add', { driver: 'memory', 'node-name': 'src', size: SIZE });
    await s.execute('blockdev-add', {
      driver: 'raw',
      'node-name': 'tgt',
      file: {
        driver: 'blkdebug',
        'inject-error': [{ event: 'pwritev', errno: 5, once: false }],
        image: { driver: 'memory', size: SIZE },
      },
    });
    const guest = drive(s.graph, 'd0', 'src');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 9);
    await s.execute('blockdev-mirror', {
      'job-id': 'e',
      device: 'd0',
      target: 'tgt',
      sync: 'full',
      'on-target-error': 'stop',
    });
    expect(await s.waitEvent('BLOCK_JOB_ERROR')).toEqual({ device: 'e', operation: 'write', action: 'stop' });
    await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.status === 'paused');
    const [info] = (await s.execute('query-block-jobs')).return as Message[];
    expect(info).toMatchObject({ 'io-status': 'failed', paused: true, status: 'paused' });
    expect(await s.execute('job-complete', { id: 'e' })).toEqual({
      error: {
        class: 'GenericError',
        desc: "Job 'e' in state 'paused' cannot accept command verb 'complete'",
      },
    });
    await s.execute('job-cancel', { id: 'e' });
    await s.waitEvent('BLOCK_JOB_CANCELLED');
    await s.execute('blockdev-mirror', { 'job-id': 'r', device: 'd0', target: 'tgt', sync: 'full' });
    const failed = await s.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === 'r');
    expect(failed).toMatchObject({ error: 'Input/output error', type: 'mirror' });
    await loop.stop();
    expect(guest.root!.nodeName).toBe('src');
    expect(s.graph.lookup('src').parents.length).toBe(1);
    expect(s.graph.lookup('tgt').parents.length).toBe(0);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
  });
});
