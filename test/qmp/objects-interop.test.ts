/**
 * object-add / object-del / qom-* and the throttle filter over QMP, against QEMU 7.2's
 * qemu-system-x86_64 (see interop-helpers.ts). qom-list is compared as a set: QEMU lists an
 * object's properties in hash-table order.
 */
import { describe, expect, it } from 'vitest';
import { cmd, mismatches, type Step } from './interop-helpers.ts';
import type { Exchange } from './qmp-process.ts';

const tg = (id: string, limits?: unknown, extra: Record<string, unknown> = {}) =>
  cmd('object-add', { 'qom-type': 'throttle-group', id, ...(limits !== undefined && { limits }), ...extra });
const qomSet = (path: string, property: string, value: unknown) => cmd('qom-set', { path, property, value });
const qomGet = (path: string, property: string) => cmd('qom-get', { path, property });
const throttle = (name: string, group?: string) =>
  cmd('blockdev-add', {
    driver: 'throttle',
    'node-name': name,
    file: 'n0',
    ...(group !== undefined && { 'throttle-group': group }),
  });

/** Compares qom-list answers without their order. */
function asSet(ours: Exchange, qemu: Exchange): void {
  const sorted = (e: Exchange) =>
    e.responses.map((r) =>
      Array.isArray(r.return)
        ? [...(r.return as { name: string }[])].sort((a, b) => a.name.localeCompare(b.name))
        : r,
    );
  expect(sorted(ours)).toEqual(sorted(qemu));
}

const SCRIPT: Step[] = [
  { text: cmd('qmp_capabilities') },
  { text: tg('tg0', { 'bps-total': 1000000 }) },
  { text: qomGet('/objects/tg0', 'limits') },
  { text: qomGet('tg0', 'type') },
  { text: qomGet('/objects', 'type') },
  { text: qomGet('/objects', 'tg0') },
  { text: cmd('qom-list', { path: '/objects/tg0' }), compare: asSet },
  { text: tg('tg0', { 'bps-total': 1 }) },
  { text: tg('t1', { 'bps-total': -1 }) },
  { text: tg('t1', { 'bps-total': 1000000000000001 }) },
  { text: tg('t1', { 'bps-total': 100, 'bps-read': 100 }) },
  { text: tg('t1', { 'iops-total': 100, 'iops-write': 100 }) },
  { text: tg('t1', { 'bps-total-max': 100 }) },
  { text: tg('t1', { 'bps-total': 1000, 'bps-total-max': 100 }) },
  { text: tg('t1', { 'bps-total': 1000, 'bps-total-max-length': 0 }) },
  { text: tg('t1', { 'bps-total': 1000, 'bps-total-max-length': 5 }) },
  { text: tg('t1', { 'bps-total': 1000, 'bps-total-max': 2000, 'bps-total-max-length': 5000000000 }) },
  { text: tg('t1', { 'bps-total': 1, 'bps-total-max': 1000000000000000, 'bps-total-max-length': 5 }) },
  { text: tg('t1', { 'iops-size': 100 }) },
  { text: tg('t1', { bogus: 100 }) },
  { text: tg('t1', { 'bps-total': 'x' }) },
  { text: tg('t1', 5) },
  { text: tg('t1', undefined, { 'x-iops-total': -1 }) },
  { text: tg('t1', undefined, { 'x-iops-total': 5, 'x-iops-total-max': 1 }) },
  { text: tg('0bad') },
  { text: cmd('object-add', { 'qom-type': 'bogus', id: 'x' }) },
  { text: cmd('object-add', { 'qom-type': 'throttle-group' }) },
  { text: cmd('object-add', { id: 'x' }) },
  { text: tg('t2', undefined, { 'x-bps-read': 7 }) },
  { text: qomGet('t2', 'x-bps-read') },
  { text: qomSet('t2', 'x-bps-read', 8) },
  { text: qomSet('/objects/t2', 'limits', { 'iops-total': 5 }) },
  { text: qomGet('/objects/t2', 'limits') },
  { text: qomSet('t2', 'limits', { 'iops-read': 5 }) },
  { text: qomSet('t2', 'limits', { 'iops-total': 'x' }) },
  { text: qomSet('t2', 'limits', { bogus: 1 }) },
  { text: qomSet('t2', 'limits', 5) },
  { text: qomSet('t2', 'bogus', 5) },
  { text: qomSet('t2', 'type', 'x') },
  { text: qomGet('t2', 'bogus') },
  { text: qomGet('/objects/zz', 'limits') },
  { text: qomSet('/objects', 'type', 'x') },
  { text: qomSet('/objects', 't2', 'x') },
  { text: qomGet('/objects', 'zz') },
  { text: cmd('qom-list', { path: '/objects' }), compare: asSet },
  { text: cmd('object-add', { 'qom-type': 'secret', id: 's0', data: 'abc' }) },
  { text: qomGet('s0', 'loaded') },
  { text: qomSet('s0', 'loaded', true) },
  // The throttle filter.
  { text: cmd('blockdev-add', { driver: 'null-co', 'node-name': 'n0', size: 1048576 }) },
  { text: throttle('t0') },
  { text: throttle('t0', 'zz') },
  { text: throttle('t0', 'tg0') },
  { text: throttle('t1', 'tg0') },
  { text: cmd('object-del', { id: 'tg0' }) },
  { text: cmd('blockdev-del', { 'node-name': 't0' }) },
  { text: cmd('blockdev-del', { 'node-name': 't1' }) },
  { text: cmd('object-del', { id: 'tg0' }) },
  { text: cmd('object-del', { id: 'tg0' }) },
  { text: cmd('block_set_io_throttle', { device: 'zz', bps: 1, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0 }) },
  { text: cmd('block_set_io_throttle', { bps: 1, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0 }) },
  { text: cmd('block_set_io_throttle', { device: 'zz', bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0 }) },
  { text: cmd('quit', undefined, 'bye') },
]; // prettier-ignore

describe('QOM objects over QMP match QEMU 7.2', () => {
  it('answers the same', async () => {
    expect(await mismatches(SCRIPT)).toEqual([]);
  }, 30_000);
});
