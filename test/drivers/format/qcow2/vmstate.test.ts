/**
 * The qcow2 VM state area against QEMU 7.2: a state blockgraph writes is where `qemu-io read -b`
 * (bdrv_load_vmstate) finds it, a snapshot taken with it lists its VM SIZE in `qemu-img snapshot
 * -l` and passes `qemu-img check`, and a state real QEMU saved (`savevm` in qemu-system) reads
 * back byte for byte, from the snapshot or after the snapshot was applied.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureWasmBuilt } from '../../../wasm/ensure-built.ts';
import { expectQemuClean, openRw, Scratch } from './write-helpers.ts';

const s = new Scratch();
beforeAll(() => ensureWasmBuilt());
afterAll(() => s.remove());

const KiB = 1024;
const MiB = 1 << 20;

/** A state of three parts: 0xab, whole clusters of zeros (stored as zero clusters), 0xcd. */
function sampleState(): Uint8Array {
  const state = new Uint8Array(200 * KiB + 123);
  state.fill(0xab, 0, 64 * KiB);
  state.fill(0xcd, 192 * KiB);
  return state;
}

/** `qemu-io` commands on `path`; returns the output, failing on any verification failure. */
function qemuIo(path: string, ...commands: string[]): string {
  const args = ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), path];
  const r = spawnSync('qemu-io', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.stdout + r.stderr).not.toMatch(
    /^(Pattern verification failed|\S+ is not a sector-aligned|\w+ failed:)/m,
  );
  return r.stdout;
}

/** Reads `bytes` of the active layer's VM state as `qemu-io read -b -v` dumps them. */
function qemuVmState(path: string, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const dump = qemuIo(path, `read -b -v 0 ${bytes}`);
  for (const m of dump.matchAll(/^([0-9a-f]{8}): ((?: [0-9a-f]{2}){1,16})/gm)) {
    const at = Number.parseInt(m[1]!, 16);
    m[2]!
      .trim()
      .split(' ')
      .forEach((hex, i) => (out[at + i] = Number.parseInt(hex, 16)));
  }
  return out;
}

function allocatedClusters(path: string): number {
  return (JSON.parse(s.run('qemu-img', 'check', '--output=json', path)) as { 'allocated-clusters': number })[
    'allocated-clusters'
  ];
}

/** The line of `qemu-img snapshot -l` for snapshot `name`. */
function listed(path: string, name: string): string | undefined {
  const r = spawnSync('qemu-img', ['snapshot', '-l', path], { encoding: 'utf8' });
  return r.stdout.split('\n').find((l) => l.split(/\s+/)[1] === name);
}

describe('qcow2 VM state area', () => {
  // 12 MiB with 16 KiB clusters: one L2 table maps 32 MiB (16 MiB with extended L2 entries), so
  // the area starts at 32 MiB (16 MiB) — the offsets differ, and QEMU must agree on each.
  for (const opts of ['cluster_size=16k', 'cluster_size=16k,extended_l2=on']) {
    it(`is where qemu-io read -b finds it (${opts})`, async () => {
      const path = s.create(`active-${opts.length}.qcow2`, 12 * MiB, opts);
      qemuIo(path, 'write -P 0x11 0 12M');
      const before = allocatedClusters(path);
      const img = await openRw(path);
      await img.node.ops.saveVmState!(0, sampleState());
      await img.close();
      qemuIo(path, 'read -b -P 0xab 0 64k', 'read -b -P 0 64k 128k', 'read -b -P 0xcd 192k 8k');
      qemuIo(path, 'read -P 0x11 0 12M');
      expectQemuClean(path);
      // 5 data clusters, an L2 table and maybe a moved L1: the 8 zero clusters took none.
      expect(allocatedClusters(path) - before).toBeLessThanOrEqual(7);
    });
  }

  it('reads what qemu-io write -b put in the active layer', async () => {
    const path = s.create('qemu-active.qcow2', 1 * MiB);
    qemuIo(path, 'write -b -P 0x5a 4k 100k');
    const img = await openRw(path);
    const got = new Uint8Array(112 * KiB);
    await img.node.ops.loadVmState!(0, got);
    await img.close();
    const want = new Uint8Array(112 * KiB);
    want.fill(0x5a, 4 * KiB, 104 * KiB);
    expect(Buffer.compare(got, want)).toBe(0);
  });

  it('goes into a snapshot that lists its VM SIZE; the active layer drops it', async () => {
    const path = s.create('snap.qcow2', 1 * MiB);
    const state = sampleState();
    const img = await openRw(path);
    await img.node.ops.saveVmState!(0, state);
    await img.node.ops.snapshotCreate!('s1', {
      vmStateSize: state.length,
      vmClockNsec: 1_500_000_000,
      icount: -1,
    });
    const fromSnapshot = new Uint8Array(state.length);
    await img.node.ops.loadVmState!(0, fromSnapshot, '1');
    const active = new Uint8Array(state.length);
    await img.node.ops.loadVmState!(0, active);
    await img.close();
    expect(Buffer.compare(fromSnapshot, state)).toBe(0);
    expect(active.every((b) => b === 0)).toBe(true);
    expect(listed(path, 's1')).toMatch(/^1\s+s1\s+200 KiB \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 00:00:01\.500\s*$/);
    expectQemuClean(path);
    qemuIo(path, 'read -b -P 0 0 200k');
    // QEMU finds the state of the snapshot once it is applied (load_snapshot's order).
    const applied = s.path('snap-applied.qcow2');
    copyFileSync(path, applied);
    s.run('qemu-img', 'snapshot', '-a', 's1', applied);
    qemuIo(applied, 'read -b -P 0xab 0 64k', 'read -b -P 0 64k 128k', 'read -b -P 0xcd 192k 8k');
  });

  it('reads the state QEMU saved, from the snapshot and after applying it', async () => {
    const path = s.create('qemu-savevm.qcow2', 4 * MiB);
    const qmp = [
      { execute: 'qmp_capabilities' },
      { execute: 'human-monitor-command', arguments: { 'command-line': 'savevm qs' } },
      { execute: 'quit' },
    ];
    const machine = ['-M', 'pc', '-nodefaults', '-display', 'none', '-m', '16', '-qmp', 'stdio'];
    const r = spawnSync('qemu-system-x86_64', [...machine, '-drive', `file=${path},format=qcow2,if=ide`], {
      input: qmp.map((c) => JSON.stringify(c)).join('\n'),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const info = JSON.parse(s.run('qemu-img', 'info', '--output=json', path)) as {
      snapshots: { id: string; 'vm-state-size': number }[];
    };
    const { id, 'vm-state-size': size } = info.snapshots[0]!;
    expect(size).toBeGreaterThan(64 * KiB);
    const img = await openRw(path);
    const ours = new Uint8Array(size);
    await img.node.ops.loadVmState!(0, ours, id);
    // blockgraph's loadvm order: the snapshot applied, then the active layer's state read.
    await img.node.ops.snapshotGoto!(id);
    const afterGoto = new Uint8Array(size);
    await img.node.ops.loadVmState!(0, afterGoto);
    await img.close();
    // QEMU_VM_FILE_MAGIC and QEMU_VM_FILE_VERSION (migration/savevm.h).
    expect(Buffer.from(ours.subarray(0, 8)).toString('hex')).toBe('5145564d00000003');
    const applied = s.path('qemu-savevm-applied.qcow2');
    copyFileSync(path, applied);
    s.run('qemu-img', 'snapshot', '-a', 'qs', applied);
    const theirs = qemuVmState(applied, Math.ceil(size / 512) * 512).subarray(0, size);
    const diff = ours.findIndex((b, i) => b !== theirs[i]);
    expect(diff, `first difference at ${diff}: ${ours[diff]} vs ${theirs[diff]}`).toBe(-1);
    expect(Buffer.compare(afterGoto, ours)).toBe(0);
    expectQemuClean(path);
  });
});
