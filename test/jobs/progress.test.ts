/**
 * Progress and speed, what progress bars and rate limits read: every job's current-progress
 * climbs to total-progress without passing it and reaches it exactly once, at the end (stream,
 * commit, mirror, backup, create), with a guest writing during the block jobs; `speed` holds a
 * job to QEMU's 100 ms slices (an injected clock) and slows a real run down to about its rate.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runJobCommand } from '../../src/jobs/job-command.ts';
import { RateLimit } from '../../src/jobs/ratelimit.ts';
import { jobsOf } from '../../src/jobs/registry.ts';
import { localExecute } from '../../src/qmp/commands/local.ts';
import { tempDir } from '../cli/helpers.ts';
import { drive, readAll, session, writeLoop, type Message, type Session } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const MiB = 1 << 20;
const SIZE = 2 * MiB;

/** Memory nodes: a raw `base` full of data, qcow2 `mid` over it and qcow2 `top` over mid. */
async function chain(s: Session): Promise<void> {
  const execute = localExecute(s.graph);
  await execute('blockdev-add', { driver: 'memory', 'node-name': 'base', size: SIZE });
  await s.graph.lookup('base').write(0, new Uint8Array(SIZE).fill(1));
  for (const [name, backing] of [
    ['mid', 'base'],
    ['top', 'mid'],
  ] as const) {
    await execute('blockdev-add', { driver: 'memory', 'node-name': `${name}-file`, size: 0 });
    await runJobCommand(execute, 'blockdev-create', {
      'job-id': `create-${name}`,
      options: { driver: 'qcow2', file: `${name}-file`, size: SIZE },
    });
    await execute('blockdev-add', { driver: 'qcow2', 'node-name': name, file: `${name}-file`, backing });
  }
  await s.graph.lookup('mid').write(MiB, new Uint8Array(MiB).fill(2));
}

/**
 * Runs `command` (job `args['job-id']`, kept until dismissed) while sampling the job's
 * [current, total] at every macrotask; `whileReady` runs when it goes ready (mirror: complete).
 */
async function progressOf(s: Session, command: string, args: Message, whileReady?: () => Promise<unknown>) {
  const id = args['job-id'] as string;
  const samples: [number, number][] = [];
  const sample = () => {
    const job = jobsOf(s.graph)
      .jobs()
      .find((j) => j.id === id);
    if (job) samples.push([job.current, job.total]);
  };
  const timer = setInterval(sample, 0);
  expect(await s.execute(command, args)).toEqual({ return: {} });
  if (whileReady) {
    await s.waitEvent('BLOCK_JOB_READY', (d) => d.device === id);
    await whileReady();
  }
  await s.waitEvent('JOB_STATUS_CHANGE', (d) => d.id === id && d.status === 'concluded');
  clearInterval(timer);
  sample();
  expect((await s.execute('query-jobs')).return).toMatchObject([{ id, status: 'concluded' }]);
  await s.execute('job-dismiss', { id });
  return samples;
}

/**
 * current never decreases nor passes total, and meets a non-zero total once: at the end; at
 * least `seen` samples show the job running.
 */
function expectReachesTotalOnce(samples: [number, number][], seen = 3): void {
  const counted = samples.filter(([, total]) => total > 0);
  expect(counted.length).toBeGreaterThanOrEqual(seen);
  let reached = 0;
  counted.forEach(([current, total], i) => {
    const previous = counted[i - 1];
    expect(current).toBeLessThanOrEqual(total);
    if (previous) expect(current).toBeGreaterThanOrEqual(previous[0]);
    if (current === total && (!previous || previous[0] !== previous[1])) reached++;
  });
  expect(reached).toBe(1);
  const [current, total] = counted.at(-1)!;
  expect(current).toBe(total);
}

describe('job progress', () => {
  // Rate-limited so that the samples see the job on its way.
  const common = { speed: 16 * MiB, 'auto-dismiss': false };

  it('stream, commit, mirror and backup reach total exactly once, with a guest writing', async () => {
    const s = await session();
    await chain(s);
    await localExecute(s.graph)('blockdev-add', { driver: 'memory', 'node-name': 'tgt', size: SIZE });
    const guest = drive(s.graph, 'd0', 'top');
    const loop = writeLoop(guest, await readAll(guest), 3, 1);
    const runs: [string, Message, (() => Promise<unknown>)?][] = [
      ['block-commit', { 'job-id': 'c', device: 'd0', 'top-node': 'mid', ...common }],
      ['blockdev-backup', { 'job-id': 'b', device: 'top', target: 'tgt', sync: 'full', ...common }],
      ['block-stream', { 'job-id': 's', device: 'top', ...common }],
    ];
    for (const [command, args] of runs) expectReachesTotalOnce(await progressOf(s, command, args));
    await loop.stop();
    await guest.close();
    // The mirror's total grows with guest writes while it runs; without them it reaches it once.
    const mirror = { 'job-id': 'm', device: 'top', target: 'tgt', sync: 'full', ...common };
    expectReachesTotalOnce(
      await progressOf(s, 'blockdev-mirror', mirror, () => s.execute('job-complete', { id: 'm' })),
    );
  });

  it('blockdev-create goes from 0/1 to 1/1', async () => {
    const s = await session();
    const file = { driver: 'file', filename: tmp.path('c.qcow2') };
    await runJobCommand(localExecute(s.graph), 'blockdev-create', {
      'job-id': 'f',
      options: { ...file, size: 0 },
    });
    const args = { 'job-id': 'c', options: { driver: 'qcow2', file, size: SIZE } };
    const samples = await progressOf(s, 'blockdev-create', args);
    expect(samples[0]).toEqual([0, 1]);
    expectReachesTotalOnce(samples, 2);
  });
});

describe('speed', () => {
  it('cuts time into 100 ms slices of speed/10 bytes, as QEMU’s ratelimit (injected clock)', () => {
    let now = 1000;
    const limit = new RateLimit(() => now);
    limit.setSpeed(MiB); // 104857.6 bytes a slice
    expect(limit.delay(64 * 1024)).toBe(0);
    // 128 KiB in the slice: it stretches to 125 ms, 125 ms from its start.
    expect(limit.delay(64 * 1024)).toBe(125);
    now += 125;
    expect(limit.delay(64 * 1024)).toBe(62.5); // still that slice: 192 KiB stretch it to 187.5 ms
    now += 63;
    expect(limit.delay(64 * 1024)).toBe(0); // a new slice
    now += 200;
    limit.setSpeed(0);
    expect(limit.delay(100 * MiB)).toBe(0);
  });

  it('slows a real stream down to about its rate', async () => {
    const timed = async (speed: number) => {
      const s = await session();
      await chain(s);
      const start = performance.now();
      await progressOf(s, 'block-stream', { 'job-id': 's', device: 'top', speed, 'auto-dismiss': false });
      return performance.now() - start;
    };
    const unlimited = await timed(0);
    // 2 MiB at 8 MiB/s: 250 ms, less the first slice's quota (QEMU lets that much through at once).
    const limited = await timed(8 * MiB);
    expect(limited).toBeGreaterThan(150);
    expect(limited).toBeLessThan(1500);
    expect(unlimited).toBeLessThan(limited);
  });
});
