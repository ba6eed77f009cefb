/**
 * Interop for the QMP forms of the image tools: blockdev-snapshot-internal-sync,
 * blockdev-snapshot-delete-internal-sync, change-backing-file and x-blockdev-amend, run as one
 * script against `blockgraph daemon` and QEMU 7.2 (interop-helpers.ts), each on its own copies
 * of the same images. Besides what interop.test.ts leaves out, not compared: a deleted
 * snapshot's date and VM clock (wall-clock and QEMU's virtual clock). A job's events come
 * before or after its command's answer as timing has it: they are compared in order over the
 * whole script, and the concluded jobs (errors included) by query-jobs at its end.
 * Afterwards both servers' images must pass qemu-img check and hold the same guest data, the
 * same snapshots, and headers naming the same backing files.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/helpers.ts';
import { cmd, compareWithout, DIR, mismatches, type Step } from './interop-helpers.ts';
import type { Exchange, Message } from './qmp-process.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const dirs = [tmp.path('ours'), tmp.path('qemu')] as const;

function tool(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The images of the script, made by qemu-img in `dir`. */
function makeImages(dir: string): void {
  mkdirSync(dir);
  const img = (name: string, fmt: string, more: string[], size?: string) =>
    tool('qemu-img', 'create', '-q', '-f', fmt, ...more, join(dir, name), ...(size ? [size] : []));
  img('a.qcow2', 'qcow2', [], '1M');
  tool('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x11 0 128k', join(dir, 'a.qcow2'));
  img('r.raw', 'raw', [], '1M');
  img('c.qcow2', 'qcow2', [], '1M');
  tool('qemu-img', 'snapshot', '-c', 's1', join(dir, 'c.qcow2'));
  img('base.qcow2', 'qcow2', [], '1M');
  img('mid.qcow2', 'qcow2', ['-b', 'base.qcow2', '-F', 'qcow2']);
  img('top.qcow2', 'qcow2', ['-b', 'mid.qcow2', '-F', 'qcow2']);
  img('mid2.qcow2', 'qcow2', ['-b', 'base.qcow2', '-F', 'qcow2']);
  img('rawbase.raw', 'raw', [], '1M');
  img('raw2.raw', 'raw', [], '1M');
  img('other.qcow2', 'qcow2', ['-b', 'rawbase.raw', '-F', 'raw']);
}

const add = (node: string, filename: string, extra: Record<string, unknown> = {}) =>
  cmd('blockdev-add', { driver: 'qcow2', 'node-name': node, ...extra, file: { driver: 'file', filename } });

/**
 * `steps` with each step's JOB_STATUS_CHANGE events taken out of its comparison and appended to
 * `events` (ours, QEMU's), to be compared once the script ran.
 */
function jobEventsApart(steps: readonly Step[]) {
  const events: [Message[], Message[]] = [[], []];
  const apart = (e: Exchange, into: Message[]): Exchange => {
    const job = (m: Message) => m.event === 'JOB_STATUS_CHANGE';
    into.push(...e.events.filter(job));
    return { ...e, events: e.events.filter((m) => !job(m)) };
  };
  const plain = (ours: Exchange, qemu: Exchange) => expect(ours).toEqual(qemu);
  const apartSteps = steps.map((step) => ({
    ...step,
    compare: (ours: Exchange, qemu: Exchange) =>
      (step.compare ?? plain)(apart(ours, events[0]), apart(qemu, events[1])),
  }));
  return { steps: apartSteps, events };
}

function script(): Step[] {
  const snap = (args: Record<string, unknown>) => cmd('blockdev-snapshot-internal-sync', args);
  const del = (args: Record<string, unknown>) => cmd('blockdev-snapshot-delete-internal-sync', args);
  const change = (args: Record<string, unknown>) => cmd('change-backing-file', args);
  const amend = (args: Record<string, unknown>) => cmd('x-blockdev-amend', args);
  const deleted: Step['compare'] = compareWithout(['date-sec', 'date-nsec', 'vm-clock-sec', 'vm-clock-nsec']);
  const luks = { format: 'luks', state: 'active', 'new-secret': 's' };
  return [
    { text: cmd('qmp_capabilities') },
    { text: add('q0', `${DIR}/a.qcow2`).replace('"driver":"file"', '"driver":"file","node-name":"q0f"') },
    {
      text: cmd('blockdev-add', {
        driver: 'raw',
        'node-name': 'r0',
        file: { driver: 'file', filename: `${DIR}/r.raw` },
      }),
    },
    { text: add('ro', `${DIR}/c.qcow2`, { 'read-only': true }) },
    { text: add('top', `${DIR}/top.qcow2`) },
    { text: add('other', `${DIR}/other.qcow2`) },
    // blockdev-snapshot-internal-sync
    { text: snap({ device: 'q0', name: 's1' }) },
    { text: snap({ device: 'q0', name: 's1' }) },
    { text: snap({ device: 'q0', name: '' }) },
    { text: snap({ device: 'q0', name: '1' }) },
    { text: snap({ device: 'q0', name: 's3' }) },
    { text: snap({ device: 'zz', name: 's2' }) },
    { text: snap({ device: 'r0', name: 's2' }) },
    { text: snap({ device: 'q0f', name: 's2' }) },
    { text: snap({ device: 'ro', name: 's2' }) },
    { text: snap({ device: 'q0' }) },
    { text: snap({ name: 'x' }) },
    { text: snap({ device: 'q0', name: 's4', x: 1 }) },
    // blockdev-snapshot-delete-internal-sync
    { text: del({ device: 'q0', name: 's1' }), compare: deleted },
    { text: del({ device: 'q0', name: 's1' }) },
    { text: del({ device: 'q0', id: '9' }) },
    { text: del({ device: 'q0' }) },
    { text: del({ device: 'q0', id: '2' }), compare: deleted },
    { text: del({ device: 'q0', id: '3', name: 'wrong' }) },
    { text: del({ device: 'zz', name: 's1' }) },
    { text: del({ device: 'r0', name: 's1' }) },
    { text: del({ device: 'q0f', name: 's1' }) },
    { text: del({ device: 'ro', id: '', name: '' }) },
    { text: del({ device: 'ro', name: 's1' }) },
    // change-backing-file
    { text: change({ device: 'top', 'image-node-name': 'top', 'backing-file': 'mid2.qcow2' }) },
    { text: change({ device: 'other', 'image-node-name': 'other', 'backing-file': 'raw2.raw' }) },
    { text: change({ device: 'other', 'image-node-name': 'other', 'backing-file': '' }) },
    { text: change({ device: 'top', 'image-node-name': 'top', 'backing-file': 'x'.repeat(1024) }) },
    { text: change({ device: 'zz', 'image-node-name': 'top', 'backing-file': 'x' }) },
    { text: change({ device: 'top', 'image-node-name': 'zz', 'backing-file': 'x' }) },
    { text: change({ device: 'top', 'image-node-name': 'q0', 'backing-file': 'x' }) },
    { text: change({ device: 'q0f', 'image-node-name': 'q0', 'backing-file': 'x' }) },
    { text: change({ device: 'other', 'image-node-name': 'top', 'backing-file': 'x' }) },
    { text: change({ device: 'top', 'image-node-name': 'top' }) },
    { text: change({ device: 'top', 'backing-file': 'x' }) },
    // x-blockdev-amend
    {
      text: amend({ 'job-id': 'j1', 'node-name': 'q0', options: { driver: 'qcow2', encrypt: luks } }),
    },
    { text: amend({ 'job-id': 'j2', 'node-name': 'q0', options: { driver: 'raw' } }) },
    { text: amend({ 'job-id': 'j3', 'node-name': 'q0f', options: { driver: 'file' } }) },
    { text: amend({ 'job-id': 'j4', 'node-name': 'zz', options: { driver: 'qcow2' } }) },
    { text: amend({ 'job-id': 'j5', 'node-name': 'q0', options: { driver: 'qcow2' } }) },
    { text: amend({ 'job-id': 'j6', 'node-name': 'q0', options: { driver: 'qcow2', compat: 'v2' } }) },
    { text: amend({ 'job-id': 'j7', 'node-name': 'ro', options: { driver: 'qcow2' }, force: true }) },
    { text: amend({ 'job-id': '1x', 'node-name': 'q0', options: { driver: 'qcow2' } }) },
    { text: amend({ 'job-id': 'a1', 'node-name': 'q0', options: { driver: 'bogus' } }) },
    { text: amend({ 'job-id': 'a2', 'node-name': 'q0', options: { driver: 'qcow2', encrypt: 1 } }) },
    { text: amend({ 'job-id': 'a3', 'node-name': 'q0', options: { driver: 'qcow2', encrypt: {} } }) },
    {
      text: amend({
        'job-id': 'a4',
        'node-name': 'q0',
        options: { driver: 'qcow2', encrypt: { format: 'luks' } },
      }),
    },
    {
      text: amend({
        'job-id': 'a5',
        'node-name': 'q0',
        options: { driver: 'qcow2', encrypt: { format: 'qcow' } },
      }),
    },
    {
      text: amend({
        'job-id': 'a6',
        'node-name': 'q0',
        options: { driver: 'qcow2', encrypt: { format: 'luks', state: 'inactive', x: 1 } },
      }),
    },
    { text: amend({ 'job-id': 'a7', 'node-name': 'q0', options: { driver: 'qcow2' }, force: 'yes' }) },
    { text: amend({ 'job-id': 'a8', 'node-name': 'q0', options: { driver: 'qcow2' }, x: 1 }) },
    { text: amend({ 'job-id': 5, 'node-name': 'q0', options: { driver: 'qcow2' } }) },
    { text: amend({ 'node-name': 'q0', options: { driver: 'qcow2' } }) },
    { text: amend({ 'job-id': 'a9', options: { driver: 'qcow2' } }) },
    { text: amend({ 'job-id': 'a9', 'node-name': 'q0' }) },
    { text: amend({ 'job-id': 'a9', 'node-name': 'q0', options: {} }) },
    { text: cmd('query-jobs') },
    { text: cmd('quit') },
  ];
}

/** What qemu-img sees of an image: check, its snapshots (by id and name), its backing file. */
function observe(path: string) {
  const info = JSON.parse(tool('qemu-img', 'info', '--output=json', path)) as Record<string, unknown>;
  const check = spawnSync('qemu-img', ['check', path], { encoding: 'utf8' });
  const snapshots = ((info.snapshots ?? []) as { id: string; name: string }[]).map((s) => [s.id, s.name]);
  return {
    check: check.status,
    snapshots,
    backing: info['backing-filename'],
    format: info['backing-filename-format'],
  };
}

describe('QMP image tools interop with qemu-system-x86_64', () => {
  beforeAll(() => dirs.forEach(makeImages));

  it('answers the same script with the same responses and events, and leaves the same images', async () => {
    const { steps, events } = jobEventsApart(script());
    expect(await mismatches(steps, dirs)).toEqual([]);
    expect(events[0]).toEqual(events[1]);
    expect(events[0]).toContainEqual({ event: 'JOB_STATUS_CHANGE', data: { status: 'aborting', id: 'j1' } });
    for (const name of ['a.qcow2', 'c.qcow2', 'top.qcow2', 'other.qcow2']) {
      const [ours, qemu] = dirs.map((d) => join(d, name));
      expect({ name, ...observe(ours!) }).toEqual({ name, ...observe(qemu!) });
      expect(tool('qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2', ours!, qemu!)).toBe(
        'Images are identical.\n',
      );
    }
    // change-backing-file rewrote the header as QEMU does, byte for byte (an empty name too).
    for (const name of ['top.qcow2', 'other.qcow2']) {
      const [ours, qemu] = dirs.map((d) => readFileSync(join(d, name)).subarray(0, 512));
      expect(Buffer.compare(ours!, qemu!)).toBe(0);
    }
    // The surviving snapshot holds the data it was taken with.
    const [ours, qemu] = dirs.map((d) => join(d, 'a.qcow2'));
    expect(observe(ours!).snapshots).toEqual([['3', 's3']]);
    const snapshotData = (path: string) =>
      tool('qemu-img', 'convert', '-l', 'snapshot.name=s3', '-O', 'raw', path, `${path}.s3.raw`);
    snapshotData(ours!);
    snapshotData(qemu!);
    expect(tool('qemu-img', 'compare', '-f', 'raw', '-F', 'raw', `${ours}.s3.raw`, `${qemu}.s3.raw`)).toBe(
      'Images are identical.\n',
    );
  }, 20000);
});
