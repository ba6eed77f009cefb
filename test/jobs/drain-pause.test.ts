/**
 * Drains pause jobs as in QEMU (child_job_drained_begin/poll/end): a live graph change over a
 * running job's nodes starts only once the job sits at a pause point (JOB_STATUS_CHANGE paused),
 * the job does no I/O during the change, resumes after (running), and its result is intact.
 * Captured with qemu-system-x86_64 7.2: an empty `transaction` (a drain of all nodes) during a
 * running mirror emits JOB_STATUS_CHANGE paused, then running.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { jobsOf } from '../../src/jobs/registry.ts';
import { tempDir } from '../cli/helpers.ts';
import { differs, drive, readAll, session, statuses, writeLoop, type Session } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const MiB = 1 << 20;
const SIZE = 2 * MiB;

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A qcow2 image `name` (backing `backing`, if any) opened as node `name` over node `name`-file. */
async function addImage(s: Session, name: string, backing: string | null): Promise<string> {
  const path = tmp.path(`${name}.qcow2`);
  const b = backing ? ['-b', tmp.path(`${backing}.qcow2`), '-F', 'qcow2'] : [];
  qemuImg('create', '-q', '-f', 'qcow2', ...b, path, String(SIZE));
  if (!backing) spawnSync('qemu-io', ['-c', 'write -P 5 0 1M', path]);
  const file = { driver: 'file', 'node-name': `${name}-file`, filename: path };
  const r = await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': name, backing, file });
  expect(r).toEqual({ return: {} });
  return path;
}

/**
 * A live change over `node`: a raw node is inserted between it and its file (graph.replaceNode).
 * Answers what the job `id` looked like while the graph was changed (inside the drained section,
 * where the qcow2 driver is told of its new file) and the event count at that moment.
 */
async function insertRawBelow(s: Session, node: BlockNode, id: string) {
  const file = node.childList.find((e) => e.name === 'file')!.node;
  const raw = await s.graph.open({ driver: 'raw', 'node-name': `${node.nodeName}-raw`, file: file.nodeName });
  const job = jobsOf(s.graph).find(id);
  const seen: { status?: string; current?: number; events?: number } = {};
  const replaceChild = node.ops.replaceChild!.bind(node.ops);
  node.ops.replaceChild = (name, child) => {
    Object.assign(seen, { status: job.status, current: job.current, events: s.events.length });
    replaceChild(name, child);
  };
  await s.graph.replaceNode(file, raw);
  node.ops.replaceChild = replaceChild;
  return { ...seen, after: job.current, raw };
}

/** The index of job `id`'s JOB_STATUS_CHANGE `status` events in s.events. */
function indexes(s: Session, id: string, status: string): number[] {
  return s.events.flatMap(([n, d], i) =>
    n === 'JOB_STATUS_CHANGE' && d.id === id && d.status === status ? [i] : [],
  );
}

describe('drains pause jobs', () => {
  it('a backend without request queuing lets requests through during its drain', async () => {
    const s = await session();
    await s.execute('blockdev-add', { driver: 'memory', 'node-name': 'mem', size: SIZE });
    const outcome = async (requestQueuing: boolean) => {
      const blk = new BlockBackend(s.graph, '', { requestQueuing });
      blk.insert(s.graph.lookup('mem'));
      let written = false;
      await blk.drained(async () => {
        void blk.write(0, new Uint8Array(512).fill(1)).then(() => (written = true));
        await new Promise((r) => setTimeout(r, 10));
      });
      const during = written;
      await blk.close();
      return during;
    };
    expect(await outcome(true)).toBe(false);
    expect(await outcome(false)).toBe(true);
  });

  it('a live change during a stream waits for its pause point; the stream ends intact', async () => {
    const s = await session();
    await addImage(s, 'sbase', null);
    const top = await addImage(s, 'stop', 'sbase');
    const guest = drive(s.graph, 'd0', 'stop');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 3);
    // Slow, so the change surely finds it running; full speed afterwards.
    await s.execute('block-stream', { 'job-id': 's1', device: 'stop', speed: MiB });
    // Mid-copy: a chunk of the stream is in flight or the job sleeps off its rate.
    await new Promise((r) => setTimeout(r, 40));
    const change = await insertRawBelow(s, s.graph.lookup('stop'), 's1');
    expect(change.status).toBe('paused');
    // No job I/O inside the section: the progress did not move while the graph changed.
    expect(change.after).toBe(change.current);
    await s.execute('block-job-set-speed', { device: 's1', speed: 0 });
    await s.waitEvent('BLOCK_JOB_COMPLETED');
    // Paused before the graph changed, running again after.
    expect(indexes(s, 's1', 'paused').at(-1)).toBeLessThan(change.events!);
    expect(indexes(s, 's1', 'running').at(-1)).toBeGreaterThanOrEqual(change.events!);
    await loop.stop();
    expect(statuses(s.events, 's1').slice(0, 4)).toEqual(['created', 'running', 'paused', 'running']);
    expect(s.graph.lookup('stop').childList.find((e) => e.name === 'file')!.node).toBe(change.raw);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    await s.execute('blockdev-del', { 'node-name': 'stop' });
    qemuImg('check', top);
  });

  it('a live change during a mirror under writes pauses it; it converges and pivots intact', async () => {
    const s = await session();
    const src = await addImage(s, 'msrc', null);
    const tgt = await addImage(s, 'mtgt', null);
    const guest = drive(s.graph, 'd0', 'msrc');
    const shadow = await readAll(guest);
    const loop = writeLoop(guest, shadow, 9);
    const mirror = {
      'job-id': 'm1',
      device: 'd0',
      target: 'mtgt',
      sync: 'full',
      speed: 256 * 1024,
      'buf-size': 64 * 1024,
    };
    // write-blocking: the mirror converges however fast the guest writes (see copy-jobs.test.ts).
    const blocking = { ...mirror, 'copy-mode': 'write-blocking' };
    expect(await s.execute('blockdev-mirror', blocking)).toEqual({ return: {} });
    await new Promise((r) => setTimeout(r, 40));
    const change = await insertRawBelow(s, s.graph.lookup('msrc'), 'm1');
    expect(change.status).toBe('paused');
    expect(change.after).toBe(change.current);
    await s.execute('block-job-set-speed', { device: 'm1', speed: 0 });
    await s.waitEvent('BLOCK_JOB_READY');
    expect(indexes(s, 'm1', 'paused').at(-1)).toBeLessThan(change.events!);
    expect(indexes(s, 'm1', 'running').at(-1)).toBeGreaterThanOrEqual(change.events!);
    expect(await s.execute('job-complete', { id: 'm1' })).toEqual({ return: {} });
    await s.waitEvent('BLOCK_JOB_COMPLETED');
    await loop.stop();
    expect(guest.root!.nodeName).toBe('mtgt');
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    await guest.close();
    for (const n of ['mtgt', 'msrc']) await s.execute('blockdev-del', { 'node-name': n });
    qemuImg('check', tgt);
    qemuImg('check', src);
  });

  it('a live change during a backup pauses it through its filter; the target holds the start', async () => {
    const s = await session();
    await addImage(s, 'bsrc', null);
    const tgt = await addImage(s, 'btgt', null);
    const guest = drive(s.graph, 'd0', 'bsrc');
    const shadow = await readAll(guest);
    const backup = { 'job-id': 'b1', device: 'd0', target: 'btgt', sync: 'full', speed: MiB };
    expect(await s.execute('blockdev-backup', backup)).toEqual({ return: {} });
    const atStart = shadow.slice();
    const loop = writeLoop(guest, shadow, 5);
    await new Promise((r) => setTimeout(r, 40));
    const change = await insertRawBelow(s, s.graph.lookup('bsrc'), 'b1');
    expect(change.status).toBe('paused');
    expect(change.after).toBe(change.current);
    await s.execute('block-job-set-speed', { device: 'b1', speed: 0 });
    await s.waitEvent('BLOCK_JOB_COMPLETED');
    await loop.stop();
    expect(indexes(s, 'b1', 'paused').at(-1)).toBeLessThan(change.events!);
    expect(indexes(s, 'b1', 'running').at(-1)).toBeGreaterThanOrEqual(change.events!);
    // The filter and the job's edge are gone: the drive is on the source again.
    expect(guest.root!.nodeName).toBe('bsrc');
    expect(s.graph.lookup('btgt').parents).toHaveLength(0);
    expect(differs(await readAll(guest), shadow)).toBeUndefined();
    const target = drive(s.graph, 'd1', 'btgt');
    expect(differs(await readAll(target), atStart)).toBeUndefined();
    for (const d of [guest, target]) await d.close();
    await s.execute('blockdev-del', { 'node-name': 'btgt' });
    qemuImg('check', tgt);
  });
});
