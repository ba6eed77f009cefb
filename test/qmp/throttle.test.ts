/**
 * A drive's own I/O limits: -drive throttling.* / bps= and block_set_io_throttle on an
 * in-process monitor, with query-block's fields and QEMU 7.2's texts (captured from
 * qemu-system-x86_64 -M none -drive driver=null-co,if=none,id=d0 -qmp stdio), and the limits
 * holding the drive's requests back on an injected clock.
 */
import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { driveToConfig, parseDrive } from '../../src/config/drive.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { openDrive } from '../../src/graph/drive.ts';
import { ObjectRegistry } from '../../src/objects/registry.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { ManualClock, settle } from '../block/throttle/manual-clock.ts';
import type { Message } from './in-process.ts';

const MS = 1e6;
const ZERO = { bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0 };
const err = (desc: string, cls = 'GenericError') => ({ error: { class: cls, desc } });

/** A monitor whose graph has the -drive `drive` (and runs on `clock`), and a QMP session on it. */
async function machine(drive: string, clock?: ManualClock) {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit, new ObjectRegistry({ clock })));
  const backend = await openDrive(monitor.graph, driveToConfig(parseDrive(drive)));
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const execute = async (name: string, args?: Message): Promise<Message> => {
    session.feed(`${JSON.stringify({ execute: name, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    return JSON.parse(lines.splice(0).at(-1)!) as Message;
  };
  await execute('qmp_capabilities');
  return { graph: monitor.graph, backend, execute };
}

/** The throttle members of query-block's first drive. */
async function limits(execute: (n: string) => Promise<Message>): Promise<Record<string, unknown>> {
  const [drive] = (await execute('query-block')).return as { inserted: Record<string, unknown> }[];
  const keys = /^(bps|iops|group)/;
  return Object.fromEntries(Object.entries(drive!.inserted).filter(([k]) => keys.test(k)));
}

describe('-drive I/O limits', () => {
  it('show in query-block as QEMU shows them', async () => {
    const { execute } = await machine(
      'driver=null-co,if=none,id=d0,bps=1000,iops_rd=3,bps_max=2000,group=foo',
    );
    // qemu-system-x86_64 ... -drive <the same>: query-block's inserted members.
    expect(await limits(execute)).toEqual({
      bps: 1000, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 3, iops_wr: 0,
      bps_max: 2000, bps_max_length: 1, group: 'foo',
    }); // prettier-ignore
    const plain = await machine(
      'driver=null-co,if=none,id=d0,throttling.bps-total=1000,throttling.iops-size=512,throttling.iops-total=5',
    );
    expect(await limits(plain.execute)).toEqual({ ...ZERO, bps: 1000, iops: 5, iops_size: 512, group: 'd0' });
  });
});

describe('block_set_io_throttle', () => {
  it('sets, regroups and removes a drive’s limits', async () => {
    const { execute } = await machine('driver=null-co,if=none,id=d0');
    expect(await limits(execute)).toEqual(ZERO);
    const set = (args: Message) => execute('block_set_io_throttle', { device: 'd0', ...ZERO, ...args });
    expect(await set({ bps: 1000, bps_rd: 10 })).toEqual(
      err('bps/iops/max total values and read/write values cannot be used at the same time'),
    );
    expect(await set({ bps: -1 })).toEqual(err('bps/iops/max values must be within [0, 1000000000000000]'));
    expect(await set({ bps: 1, bps_max_length: 0 })).toEqual(err('the burst length cannot be 0'));
    expect(await set({ bps: 1000, bps_max: 2000, bps_max_length: 10, group: 'gg' })).toEqual({ return: {} });
    expect(await limits(execute)).toEqual({
      ...ZERO,
      bps: 1000,
      bps_max: 2000,
      bps_max_length: 10,
      group: 'gg',
    });
    const tg = { 'qom-type': 'throttle-group', id: 'gg', limits: { 'iops-total': 100 } };
    expect(await execute('object-add', tg)).toEqual(err('A group with this name already exists'));
    // An anonymous group is not in /objects.
    expect(await execute('qom-get', { path: '/objects/gg', property: 'limits' })).toEqual(
      err("Device '/objects/gg' not found", 'DeviceNotFound'),
    );
    expect(await set({})).toEqual({ return: {} });
    expect(await limits(execute)).toEqual(ZERO);
    // The group went with its last member.
    expect(await execute('object-add', tg)).toEqual({ return: {} });
  });

  it('joins a throttle-group object named as group, and replaces its limits', async () => {
    const { execute } = await machine('driver=null-co,if=none,id=d0');
    await execute('object-add', { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'iops-total': 100 } });
    await execute('block_set_io_throttle', { device: 'd0', ...ZERO, bps: 1000, group: 'tg0' });
    const got = (await execute('qom-get', { path: 'tg0', property: 'limits' })).return as Record<
      string,
      number
    >;
    expect([got['bps-total'], got['iops-total']]).toEqual([1000, 0]);
    expect(await execute('object-del', { id: 'tg0' })).toEqual(
      err("object 'tg0' is in use, can not be deleted"),
    );
  });

  it('names the drive by device or id, and needs a medium', async () => {
    const { graph, execute } = await machine('driver=null-co,if=none,id=d0');
    new BlockBackend(graph, 'd1');
    const set = (args: Message) => execute('block_set_io_throttle', { ...ZERO, bps: 1, ...args });
    expect(await set({ device: 'zz' })).toEqual(err("Device 'zz' not found", 'DeviceNotFound'));
    expect(await set({ id: 'zz' })).toEqual(err("Device 'zz' not found", 'DeviceNotFound'));
    expect(await set({})).toEqual(err("Need exactly one of 'device' and 'id'"));
    expect(await set({ device: 'd1' })).toEqual(err('Device has no medium'));
    expect(await set({ id: 'd0' })).toEqual({ return: {} });
    expect((await limits(execute)).group).toBe('d0');
  });

  it('holds the drive’s reads and writes to the limits; a drain lets them go', async () => {
    const clock = new ManualClock();
    const { backend, execute } = await machine('driver=null-co,if=none,id=d0', clock);
    await execute('block_set_io_throttle', { device: 'd0', ...ZERO, iops: 10 });
    const times: number[] = [];
    const io = (write: boolean) =>
      (write ? backend.write(0, new Uint8Array(512)) : backend.read(0, new Uint8Array(512))).then(() =>
        times.push(clock.now()),
      );
    const first = [io(false), io(true), io(false), io(true)];
    await clock.advance(200 * MS);
    await Promise.all(first);
    // iops-total counts both directions: two at once, then one per 100 ms.
    expect(times).toEqual([0, 0, 100 * MS, 200 * MS]);
    const queued = [io(false), io(false), io(false)];
    await settle();
    await backend.drain();
    await Promise.all(queued);
    expect(times.slice(4)).toEqual([200 * MS, 200 * MS, 200 * MS]);
  });
});

describe('qom-set on a running throttle node', () => {
  it('changes how long the next requests wait', async () => {
    const clock = new ManualClock();
    const { graph, execute } = await machine('driver=null-co,if=none,id=d0', clock);
    const tg = { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'iops-total': 2 } };
    expect(await execute('object-add', tg)).toEqual({ return: {} });
    const file = { driver: 'null-co', size: 1 << 20 };
    const add = { driver: 'throttle', 'node-name': 't0', 'throttle-group': 'tg0', file };
    expect(await execute('blockdev-add', add)).toEqual({ return: {} });
    const node = graph.nodes.get('t0')!;
    const times: number[] = [];
    const read = () => node.read(0, new Uint8Array(512)).then(() => times.push(clock.now()));
    const before = [read(), read()];
    await clock.advance(500 * MS);
    await Promise.all(before);
    // 2/s: the bucket holds 0.2, so the second request waits 400 ms.
    expect(times).toEqual([0, 400 * MS]);
    const set = { path: '/objects/tg0', property: 'limits', value: { 'iops-total': 20 } };
    expect(await execute('qom-set', set)).toEqual({ return: {} });
    const after = [read(), read(), read(), read()];
    await clock.advance(100 * MS);
    await Promise.all(after);
    // 20/s from the change on: the bucket holds 2; the fourth waits 50 ms.
    expect(times.slice(2)).toEqual([500 * MS, 500 * MS, 500 * MS, 550 * MS]);
  });
});
