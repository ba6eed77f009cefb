/**
 * util/throttle.c's accounting, exact: waits in nanoseconds for given levels, as QEMU computes
 * them; the limit checks with QEMU 7.2's texts (captured from qemu-system-x86_64 object-add).
 */
import { describe, expect, it } from 'vitest';
import {
  applyLimits,
  bucketWait,
  configToLimits,
  newConfig,
  ThrottleState,
  type ThrottleLimits,
} from '../../../src/block/throttle/throttle.ts';

const MS = 1e6;
const S = 1e9;

function state(limits: ThrottleLimits): ThrottleState {
  const cfg = newConfig();
  applyLimits(limits, cfg);
  const ts = new ThrottleState();
  ts.configure(cfg, 0);
  return ts;
}

describe('leaky bucket waits', () => {
  it('lets a request through at once, then waits until the bucket leaked below avg/10', () => {
    const ts = state({ 'bps-total': 1000 });
    expect(ts.computeWait('read', 0)).toBe(0);
    ts.account('read', 1000);
    // level 1000, bucket size 100: 900 bytes too many at 1000 B/s.
    expect(ts.computeWait('read', 0)).toBe(900 * MS);
    expect(ts.computeWait('write', 500 * MS)).toBe(400 * MS);
    expect(ts.computeWait('read', 900 * MS)).toBe(0);
  });

  it('keeps reads and writes apart in their own buckets, and counts both in total', () => {
    const ts = state({ 'iops-read': 10, 'bps-write': 100 });
    ts.account('read', 1);
    ts.account('read', 1);
    // Two reads: iops-read level 2, size 1.
    expect(ts.computeWait('read', 0)).toBe(100 * MS);
    expect(ts.computeWait('write', 0)).toBe(0);
    ts.account('write', 30);
    expect(ts.computeWait('write', 0)).toBe(200 * MS);
  });

  it('counts a request larger than iops-size as several operations', () => {
    const ts = state({ 'iops-total': 10, 'iops-size': 4096 });
    ts.account('write', 16384);
    // 4 operations; size 1 → 3 too many at 10/s.
    expect(ts.computeWait('read', 0)).toBe(300 * MS);
    const small = state({ 'iops-total': 10, 'iops-size': 4096 });
    small.account('write', 100);
    small.account('write', 100);
    expect(small.computeWait('write', 0)).toBe(100 * MS);
  });

  it('bursts at the max rate until max * length units went, then falls back to avg', () => {
    const ts = state({ 'bps-total': 1000, 'bps-total-max': 5000, 'bps-total-max-length': 2 });
    ts.account('read', 400);
    // Below max/10 = 500 in the burst bucket: no wait.
    expect(ts.computeWait('read', 0)).toBe(0);
    ts.account('read', 400);
    // Burst level 800: 300 over max/10 at 5000 B/s.
    expect(ts.computeWait('read', 0)).toBe(60 * MS);
    // Main bucket holds max * length = 10000; fill it past that.
    ts.account('read', 10_000);
    // level 10800 - 10000 = 800 too many at the average rate.
    expect(ts.computeWait('read', 0)).toBe(800 * MS);
  });

  it('without burst length the burst rate only sizes the bucket', () => {
    const bkt = { avg: 100, max: 1000, level: 1500, burstLevel: 0, burstLength: 1 };
    expect(bucketWait(bkt)).toBe(5 * S);
  });

  it('sustains exactly the burst rate during a burst and the average after it', () => {
    const ts = state({ 'iops-total': 10, 'iops-total-max': 50, 'iops-total-max-length': 2 });
    let t = 0;
    const starts: number[] = [];
    while (t < 10 * S) {
      const wait = ts.computeWait('read', t);
      if (wait > 0) {
        t += wait;
        continue;
      }
      starts.push(t);
      ts.account('read', 512);
    }
    const inWindow = (from: number, to: number) => starts.filter((s) => s >= from && s < to).length;
    // 6 at once (the burst bucket holds max/10 = 5), then one per 1/50 s: 55 in the first second.
    expect(inWindow(0, S)).toBe(55);
    expect(starts.slice(0, 8)).toEqual([0, 0, 0, 0, 0, 0, 20 * MS, 40 * MS]);
    // The main bucket (max * length = 100) is full after about 100 / (50 - 10) s; then 10/s.
    expect(inWindow(5 * S, 10 * S)).toBeGreaterThanOrEqual(49);
    expect(inWindow(5 * S, 10 * S)).toBeLessThanOrEqual(51);
  });
});

describe('limits', () => {
  it('reads back as qom-get shows them: every member, burst lengths 1', () => {
    const cfg = newConfig();
    applyLimits({ 'bps-total': 1_000_000 }, cfg);
    expect(configToLimits(cfg)).toEqual({
      'bps-read-max-length': 1, 'iops-read-max-length': 1, 'bps-read-max': 0, 'bps-total': 1000000,
      'iops-total-max-length': 1, 'iops-total': 0, 'iops-write-max': 0, 'bps-write': 0,
      'bps-total-max': 0, 'bps-write-max': 0, 'iops-size': 0, 'iops-read': 0,
      'iops-write-max-length': 1, 'iops-write': 0, 'bps-total-max-length': 1, 'iops-read-max': 0,
      'bps-read': 0, 'bps-write-max-length': 1, 'iops-total-max': 0,
    }); // prettier-ignore
  });

  it('merges a change into the current limits', () => {
    const cfg = newConfig();
    applyLimits({ 'iops-total': 5 }, cfg);
    applyLimits({ 'bps-write': 7 }, cfg);
    expect(configToLimits(cfg)).toMatchObject({ 'iops-total': 5, 'bps-write': 7 });
    expect(() => applyLimits({ 'iops-read': 5 }, cfg)).toThrow(
      'bps/iops/max total values and read/write values cannot be used at the same time',
    );
  });

  it.each<[ThrottleLimits, string]>([
    [{ 'bps-total': -1 }, 'bps/iops/max values must be within [0, 1000000000000000]'],
    [{ 'bps-total': 1000000000000001 }, 'bps/iops/max values must be within [0, 1000000000000000]'],
    [{ 'bps-total': 100, 'bps-read': 100 }, 'bps/iops/max total values and read/write values cannot be used at the same time'],
    [{ 'iops-total': 100, 'iops-write': 100 }, 'bps/iops/max total values and read/write values cannot be used at the same time'],
    [{ 'bps-total-max': 100 }, 'bps_max/iops_max require corresponding bps/iops values'],
    [{ 'bps-total': 1000, 'bps-total-max': 100 }, 'bps_max/iops_max cannot be lower than bps/iops'],
    [{ 'bps-total': 1000, 'bps-total-max-length': 0 }, 'the burst length cannot be 0'],
    [{ 'bps-total': 1000, 'bps-total-max-length': 5 }, 'burst length set without burst rate'],
    [{ 'bps-total': 1000, 'bps-total-max': 2000, 'bps-total-max-length': 5000000000 }, 'bps-total-max-length value must be in the range [0, 4294967295]'],
    [{ 'bps-total': 1000, 'bps-total-max': 1000000000000000, 'bps-total-max-length': 5 }, 'burst length too high for this burst rate'],
    [{ 'iops-size': 100 }, 'iops size requires an iops value to be set'],
  ])('%j → %s', (limits, message) => {
    expect(() => applyLimits(limits, newConfig())).toThrow(message);
  }); // prettier-ignore
});

describe('limit order', () => {
  it('reports the first bad burst length in QEMU’s order: bps before iops', () => {
    const limits = { 'iops-total-max-length': 5e9, 'bps-write-max-length': 5e9 };
    expect(() => applyLimits(limits, newConfig())).toThrow('bps-write-max-length value must be in the range');
  });
});
