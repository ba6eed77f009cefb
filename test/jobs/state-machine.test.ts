/**
 * The job state machine and the job commands, checked against what QEMU 7.2 answers
 * (qemu-system-x86_64 -qmp: the same sequences against a mirror between null-co nodes).
 */
import { describe, expect, it } from 'vitest';
import { checkVerb } from '../../src/jobs/status.ts';
import { drive, session, statuses } from './helpers.ts';

const err = (desc: string, cls = 'GenericError') => ({ error: { class: cls, desc } });
const MiB = 1 << 20;

/** The statuses of a successful job after its work (auto-finalize, auto-dismiss). */
const ENDED = ['waiting', 'pending', 'concluded', 'null'];

describe('job state machine', () => {
  it('refuses verbs with QEMU’s text', () => {
    expect(() => checkVerb('x', 'running', 'dismiss')).toThrow(
      "Job 'x' in state 'running' cannot accept command verb 'dismiss'",
    );
    expect(() => checkVerb('x', 'ready', 'complete')).not.toThrow();
    expect(() => checkVerb('x', 'concluded', 'cancel')).toThrow("in state 'concluded'");
  });

  it('a mirror goes through QEMU’s statuses, verbs and events', async () => {
    const s = await session();
    for (const name of ['src', 'tgt', 'tgt2']) {
      await s.execute('blockdev-add', { driver: 'memory', 'node-name': name, size: 4 * MiB });
    }
    drive(s.graph, 'd0', 'src');
    const args = { 'job-id': 'j1', device: 'd0', target: 'tgt', sync: 'full', speed: MiB };
    expect(
      await s.execute('blockdev-mirror', { ...args, 'auto-finalize': false, 'auto-dismiss': false }),
    ).toEqual({ return: {} });
    // QEMU checks the op blockers before the id.
    expect(await s.execute('blockdev-mirror', { ...args, device: 'tgt' })).toEqual(
      err("Node 'tgt' is busy: block device is in use by block job: mirror"),
    );
    expect(await s.execute('block-stream', { 'job-id': 'j1', device: 'tgt2' })).toEqual(
      err("Job ID 'j1' already in use"),
    );
    expect(await s.execute('blockdev-mirror', { ...args, 'job-id': 'j2' })).toEqual(
      err("Node 'src' is busy: block device is in use by block job: mirror"),
    );
    expect(await s.execute('job-dismiss', { id: 'j1' })).toEqual(
      err("Job 'j1' in state 'running' cannot accept command verb 'dismiss'"),
    );
    expect(await s.execute('job-complete', { id: 'j1' })).toEqual(
      err("Job 'j1' in state 'running' cannot accept command verb 'complete'"),
    );
    expect(await s.execute('job-resume', { id: 'j1' })).toEqual(
      err("Can't resume a job that was not paused"),
    );
    expect(await s.execute('job-pause', { id: 'j1' })).toEqual({ return: {} });
    expect(await s.execute('job-pause', { id: 'j1' })).toEqual(err('Job is already paused'));
    expect(await s.execute('job-dismiss', { id: 'nope' })).toEqual(err('Job not found'));
    expect(await s.execute('block-job-cancel', { device: 'nope' })).toEqual(
      err("Block job 'nope' not found", 'DeviceNotActive'),
    );
    expect(await s.execute('block-job-set-speed', { device: 'j1', speed: -1 })).toEqual(
      err("Parameter 'speed' expects a non-negative value"),
    );
    await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.status === 'paused');
    const [info] = (await s.execute('query-block-jobs')).return as Record<string, unknown>[];
    expect(info).toMatchObject({
      type: 'mirror',
      device: 'j1',
      len: 4 * MiB,
      busy: false,
      paused: true,
      speed: MiB,
      'io-status': 'ok',
      ready: false,
      status: 'paused',
      'auto-finalize': false,
      'auto-dismiss': false,
    });
    expect(await s.execute('job-resume', { id: 'j1' })).toEqual({ return: {} });
    expect(await s.execute('block-job-set-speed', { device: 'j1', speed: 0 })).toEqual({ return: {} });
    const ready = await s.waitEvent('BLOCK_JOB_READY');
    expect(ready).toEqual({ device: 'j1', len: 4 * MiB, offset: 4 * MiB, speed: 0, type: 'mirror' });
    expect(await s.execute('job-complete', { id: 'j1' })).toEqual({ return: {} });
    expect(await s.waitEvent('BLOCK_JOB_PENDING')).toEqual({ type: 'mirror', id: 'j1' });
    expect(await s.execute('job-dismiss', { id: 'j1' })).toEqual(
      err("Job 'j1' in state 'pending' cannot accept command verb 'dismiss'"),
    );
    expect(await s.execute('job-finalize', { id: 'j1' })).toEqual({ return: {} });
    expect((await s.execute('query-jobs')).return).toEqual([
      {
        id: 'j1',
        type: 'mirror',
        status: 'concluded',
        'current-progress': 4 * MiB,
        'total-progress': 4 * MiB,
      },
    ]);
    expect(s.graph.backends.get('d0')!.root!.nodeName).toBe('tgt');
    expect(await s.execute('job-dismiss', { id: 'j1' })).toEqual({ return: {} });
    expect((await s.execute('query-jobs')).return).toEqual([]);
    expect(statuses(s.events, 'j1')).toEqual(['created', 'running', 'paused', 'running', 'ready', ...ENDED]);
    const completed = s.events.filter(([n]) => n === 'BLOCK_JOB_COMPLETED');
    expect(completed).toEqual([
      ['BLOCK_JOB_COMPLETED', { device: 'j1', len: 4 * MiB, offset: 4 * MiB, speed: 0, type: 'mirror' }],
    ]);
  });

  it('cancel before ready aborts; a ready mirror cancelled without force completes without pivot', async () => {
    const s = await session();
    for (const name of ['src', 'tgt']) {
      await s.execute('blockdev-add', { driver: 'memory', 'node-name': name, size: 4 * MiB });
    }
    drive(s.graph, 'd0', 'src');
    await s.execute('blockdev-mirror', {
      'job-id': 'a',
      device: 'd0',
      target: 'tgt',
      sync: 'full',
      speed: 1,
    });
    expect(await s.execute('block-job-cancel', { device: 'a' })).toEqual({ return: {} });
    expect(await s.waitEvent('BLOCK_JOB_CANCELLED')).toMatchObject({
      device: 'a',
      type: 'mirror',
      len: 4 * MiB,
    });
    await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.id === 'a' && d.status === 'null');
    expect(statuses(s.events, 'a')).toEqual(['created', 'running', 'aborting', 'concluded', 'null']);
    await s.execute('blockdev-mirror', { 'job-id': 'b', device: 'd0', target: 'tgt', sync: 'full' });
    await s.waitEvent('BLOCK_JOB_READY');
    await s.execute('block-job-cancel', { device: 'b' });
    await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.id === 'b' && d.status === 'null');
    expect(statuses(s.events, 'b')).toEqual(['created', 'running', 'ready', ...ENDED]);
    expect(s.graph.backends.get('d0')!.root!.nodeName).toBe('src');
    // The job's own users are gone: the target can be deleted again.
    expect(await s.execute('blockdev-del', { 'node-name': 'tgt' })).toEqual({ return: {} });
  });

  it('argument checks with QEMU’s texts', async () => {
    const s = await session();
    for (const name of ['src', 'tgt']) {
      await s.execute('blockdev-add', { driver: 'memory', 'node-name': name, size: MiB });
    }
    const m = { 'job-id': 'm', device: 'src', target: 'tgt', sync: 'full' };
    expect(await s.execute('blockdev-mirror', { ...m, granularity: 1000 })).toEqual(
      err("Parameter 'granularity' expects a power of 2"),
    );
    expect(await s.execute('blockdev-mirror', { ...m, granularity: 256 })).toEqual(
      err("Parameter 'granularity' expects a value in range [512B, 64MB]"),
    );
    expect(await s.execute('blockdev-mirror', { ...m, 'job-id': 'bad id' })).toEqual(
      err("Invalid job ID 'bad id'"),
    );
    expect(await s.execute('blockdev-mirror', { ...m, 'job-id': undefined })).toEqual(
      err("Invalid job ID ''"),
    );
    expect(await s.execute('block-commit', { 'job-id': 'c', device: 'nosuch' })).toEqual(
      err("Device 'nosuch' not found", 'DeviceNotFound'),
    );
    expect(await s.execute('block-commit', { 'job-id': 'c', device: 'src' })).toEqual(
      err('cannot commit an image into itself'),
    );
    expect(await s.execute('block-stream', { 'job-id': 's', device: 'src', 'base-node': 'src' })).toEqual(
      err("Node 'src' is not a backing image of 'src'"),
    );
    expect(await s.execute('block-stream', { 'job-id': 's', device: 'nosuch' })).toEqual(
      err("Cannot find device='nosuch' nor node-name='nosuch'"),
    );
  });
});
