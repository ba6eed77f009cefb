/**
 * throttle-groups.c's scheduling on an injected clock: exact wake-up times, the round-robin
 * between members, drains that release queued requests, limit changes and members leaving.
 */
import { describe, expect, it } from 'vitest';
import { ThrottleGroups } from '../../../src/block/throttle/groups.ts';
import type { ThrottleGroupMember } from '../../../src/block/throttle/group.ts';
import {
  applyLimits,
  newConfig,
  type Direction,
  type ThrottleLimits,
} from '../../../src/block/throttle/throttle.ts';
import { ManualClock, settle } from './manual-clock.ts';

const MS = 1e6;

function setup(limits: ThrottleLimits, members = 1) {
  const clock = new ManualClock();
  const groups = new ThrottleGroups(clock);
  const cfg = newConfig();
  applyLimits(limits, cfg);
  const group = groups.create('tg0', cfg);
  const tgms = Array.from({ length: members }, () => groups.join('tg0'));
  return { clock, groups, group, tgms };
}

/** Issues a request and records when (clock time) and in which order it was let through. */
function issue(
  log: string[],
  times: number[],
  clock: ManualClock,
  tgm: ThrottleGroupMember,
  label: string,
  bytes = 512,
  direction: Direction = 'read',
): Promise<void> {
  return tgm.intercept(bytes, direction).then(() => {
    log.push(label);
    times.push(clock.now());
  });
}

describe('one member', () => {
  it('wakes a throttled request exactly when the bucket has leaked enough', async () => {
    const { clock, tgms } = setup({ 'bps-total': 1000 });
    const log: string[] = [];
    const times: number[] = [];
    void issue(log, times, clock, tgms[0]!, 'a', 1000);
    void issue(log, times, clock, tgms[0]!, 'b', 1000);
    void issue(log, times, clock, tgms[0]!, 'c', 1000);
    await settle();
    expect(log).toEqual(['a']);
    await clock.advance(900 * MS - 1);
    expect(log).toEqual(['a']);
    await clock.advance(1);
    expect(log).toEqual(['a', 'b']);
    await clock.advance(1000 * MS);
    expect(times).toEqual([0, 900 * MS, 1900 * MS]);
  });

  it('serves reads and writes from separate queues', async () => {
    const { clock, tgms } = setup({ 'iops-read': 10, 'iops-write': 1 });
    const log: string[] = [];
    const times: number[] = [];
    for (const label of ['r1', 'r2', 'r3']) void issue(log, times, clock, tgms[0]!, label);
    for (const label of ['w1', 'w2']) void issue(log, times, clock, tgms[0]!, label, 512, 'write');
    await clock.advance(800 * MS);
    // r1, r2 fit the read bucket (size 1: level 1 is not over it); r3 waits 100 ms. The write
    // bucket holds 0.1: w1 passes, w2 waits 900 ms, whatever the reads do.
    expect(log).toEqual(['r1', 'r2', 'w1', 'r3']);
    expect(times).toEqual([0, 0, 0, 100 * MS]);
    await clock.advance(100 * MS);
    expect(log.at(-1)).toBe('w2');
    expect(times.at(-1)).toBe(900 * MS);
  });

  it('lets every queued request go at once while its limits are disabled (drain)', async () => {
    const { clock, tgms } = setup({ 'iops-total': 1 });
    const member = tgms[0]!;
    const log: string[] = [];
    const times: number[] = [];
    const done = ['a', 'b', 'c', 'd'].map((l) => issue(log, times, clock, member, l));
    await settle();
    expect(log).toEqual(['a']);
    member.disableLimits();
    await Promise.all(done);
    expect(times).toEqual([0, 0, 0, 0]);
    await issue(log, times, clock, member, 'e');
    member.enableLimits();
    const late = issue(log, times, clock, member, 'f');
    await settle();
    expect(log).toEqual(['a', 'b', 'c', 'd', 'e']);
    await clock.advance(10_000 * MS);
    await late;
    expect(clock.armed).toBe(0);
  });

  it('applies a limit change to the requests after it', async () => {
    const { clock, group, tgms } = setup({ 'bps-total': 100 });
    const log: string[] = [];
    const times: number[] = [];
    await issue(log, times, clock, tgms[0]!, 'a', 1000);
    // qom-set: the buckets empty, the new rate applies from now on.
    group.setLimits({ 'bps-total': 10_000 });
    await issue(log, times, clock, tgms[0]!, 'b', 2000);
    void issue(log, times, clock, tgms[0]!, 'c', 1000);
    await clock.advance(200 * MS);
    // After b the level is 2000, the bucket 1000: 1000 too many at 10000 B/s = 100 ms.
    expect(times).toEqual([0, 0, 100 * MS]);
    expect(() => group.setLimits({ 'bps-read': 5 })).toThrow('cannot be used at the same time');
  });
});

describe('several members', () => {
  it('shares the limit and serves waiting members round-robin', async () => {
    const { clock, tgms } = setup({ 'iops-total': 10 }, 2);
    const [a, b] = tgms as [ThrottleGroupMember, ThrottleGroupMember];
    const log: string[] = [];
    const times: number[] = [];
    for (let i = 1; i <= 4; i++) void issue(log, times, clock, a, `a${i}`);
    for (let i = 1; i <= 4; i++) void issue(log, times, clock, b, `b${i}`);
    await clock.advance(1000 * MS);
    // Two pass at once (bucket size 1); a3 armed the group's timer and runs on it; from then on
    // one request per 100 ms, the turn alternating while both members wait.
    expect(log).toEqual(['a1', 'a2', 'a3', 'b1', 'a4', 'b2', 'b3', 'b4']);
    expect(times).toEqual([0, 0, 100, 200, 300, 400, 500, 600].map((t) => t * MS));
  });

  it('passes the turn on when a member leaves, and drops an anonymous group with its last member', async () => {
    const clock = new ManualClock();
    const groups = new ThrottleGroups(clock);
    const a = groups.join('drive0');
    const b = groups.join('drive0');
    a.configure(
      (() => {
        const cfg = newConfig();
        applyLimits({ 'iops-total': 10 }, cfg);
        return cfg;
      })(),
    );
    const log: string[] = [];
    const times: number[] = [];
    await issue(log, times, clock, a, 'a1');
    await issue(log, times, clock, a, 'a2');
    const b1 = issue(log, times, clock, b, 'b1');
    await settle();
    groups.leave(a);
    await clock.advance(100 * MS);
    await b1;
    expect(times).toEqual([0, 0, 100 * MS]);
    expect(groups.find('drive0')).toBeDefined();
    groups.leave(b);
    expect(groups.find('drive0')).toBeUndefined();
  });

  it('refuses a second group of one name', () => {
    const { groups } = setup({});
    expect(() => groups.create('tg0', newConfig())).toThrow('A group with this name already exists');
  });
});
