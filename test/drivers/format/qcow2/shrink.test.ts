/**
 * Shrinking qcow2 images (qcow2_co_truncate with a smaller size): clusters past the new end are
 * freed (no leaks in qemu-img check), the guest keeps the bytes before it, growing again shows
 * zeros, snapshots keep their content, and a v2 image with snapshots is refused as QEMU does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureWasmBuilt } from '../../../wasm/ensure-built.ts';
import { expectQemuClean, openRw, pattern, qemuCompare, Scratch } from './write-helpers.ts';

const s = new Scratch();
beforeAll(() => ensureWasmBuilt());
afterAll(() => s.remove());

const KiB = 1024;
const MiB = 1 << 20;

/** Allocated clusters as qemu-img check counts them ("N/M = ...% allocated"). */
function allocated(path: string): number {
  return Number(/(\d+)\/\d+ = [\d.]+% allocated/.exec(s.run('qemu-img', 'check', path))![1]);
}

describe('qcow2 shrink', () => {
  it.each([
    ['64 KiB clusters', '', 64 * KiB],
    ['4 KiB clusters (several L2 tables)', 'cluster_size=4k', 4 * KiB],
    ['extended L2', 'extended_l2=on', 64 * KiB],
  ])('frees what lies past the new end: %s', async (_, opts, cluster) => {
    const path = s.create(`shrink-${opts || 'default'}.qcow2`, 8 * MiB, opts);
    const shadow = pattern(8 * MiB, 7);
    const img = await openRw(path);
    await img.node.write(0, shadow);
    await img.node.flush();
    const before = allocated(path);
    const size = 3 * MiB + 5 * KiB;
    await img.node.truncate(size);
    expect(img.node.length()).toBe(size);
    await img.node.flush();
    expectQemuClean(path);
    expect(allocated(path)).toBeLessThan(before / 2);
    expect(qemuCompare(s, path, shadow.subarray(0, size))).toBe('identical');
    await img.node.truncate(6 * MiB);
    // As in QEMU, the cluster holding the new end keeps its bytes past it: growing again
    // shows them, and zeros from the next cluster on.
    const grown = new Uint8Array(6 * MiB);
    grown.set(shadow.subarray(0, Math.ceil(size / cluster) * cluster));
    await img.close();
    expectQemuClean(path);
    expect(qemuCompare(s, path, grown, 'grown.raw')).toBe('identical');
  });

  it('keeps the content of snapshots taken before the shrink', async () => {
    const path = s.create('shrink-snap.qcow2', 4 * MiB);
    const shadow = pattern(4 * MiB, 3);
    const img = await openRw(path);
    await img.node.write(0, shadow);
    await img.node.ops.snapshotCreate!('full');
    await img.node.truncate(MiB);
    await img.close();
    expectQemuClean(path);
    expect(qemuCompare(s, path, shadow.subarray(0, MiB))).toBe('identical');
    // qemu-img convert -l reads a snapshot at the image's current size: read it whole ourselves.
    const snap = await openRw(path, { 'read-only': true, 'x-snapshot': { name: 'full' } });
    const got = new Uint8Array(snap.node.length());
    await snap.node.read(0, got);
    await snap.close();
    expect(Buffer.compare(got, shadow)).toBe(0);
  });

  it("refuses a v2 image with snapshots: Can't resize a v2 image which has snapshots", async () => {
    const path = s.create('shrink-v2.qcow2', 2 * MiB, 'compat=0.10');
    s.run('qemu-img', 'snapshot', '-c', 'a', path);
    const img = await openRw(path);
    await expect(img.node.truncate(MiB)).rejects.toThrow("Can't resize a v2 image which has snapshots");
    await img.close();
  });
});
