/**
 * A running guest keeps passing its disk check loop (guest `loop` mode) while, over QMP, a
 * throttle filter is inserted above its disk and removed again (x-blockdev-replace) and a live
 * external snapshot is taken (blockdev-snapshot-sync). One boot; after each change the guest
 * must complete two more rounds, so at least one whole round ran on the changed graph.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeGuestControl } from '../../src/frontends/guest-control.ts';
import { attachBackend } from '../../src/graph/drive.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { bootGuest, buildGuest, GUEST_RAW, type RunningGuest } from '../frontends/guest-boot.ts';

let dir: string;
beforeAll(async () => {
  await buildGuest();
  dir = await mkdtemp(join(tmpdir(), 'blockgraph-live-guest-'));
}, 300_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The last round the guest reported passing. */
function lastRound(guest: RunningGuest): number {
  const rounds = guest.lines.map((l) => /^BLOCKGRAPH-CHECK loop OK (\d+)$/.exec(l)?.[1]).filter(Boolean);
  return Number(rounds.at(-1) ?? 0);
}

describe('live graph changes under a running guest', () => {
  it('throttle in and out, then a live snapshot', { timeout: 600_000 }, async () => {
    const image = join(dir, 'guest.raw');
    await copyFile(GUEST_RAW, image);
    const graph = new BlockGraph();
    const monitor = new QmpMonitor(() => graph);
    const replies: string[] = [];
    const session = monitor.connect((text) => replies.push(text));
    const ok = async (execute: string, args: Record<string, unknown>) => {
      session.feed(`${JSON.stringify({ execute, arguments: args })}\n`);
      await session.idle();
      expect(JSON.parse(replies.splice(0).at(-1)!)).toEqual({ return: {} });
    };
    await ok('qmp_capabilities', {});
    const disk = await graph.blockdevAdd({
      driver: 'raw',
      'node-name': 'disk',
      file: { driver: 'file', filename: image },
    });
    const hda = await attachBackend(graph, 'ide0-hd0', disk, {});
    await writeGuestControl(hda, { mode: 'loop', loopRounds: 0 });
    const guest = await bootGuest({ hda });
    const twoMoreRounds = () => guest.waitForRound(lastRound(guest) + 2);
    try {
      await guest.waitForRound(1);
      await ok('object-add', { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'bps-total': 8 << 20 } });
      await ok('blockdev-add', {
        driver: 'throttle',
        'node-name': 'thr',
        'throttle-group': 'tg0',
        file: 'disk',
      });
      await ok('x-blockdev-replace', { parent: 'ide0-hd0', 'new-child': 'thr' });
      expect(hda.root?.nodeName).toBe('thr');
      await twoMoreRounds();
      await ok('x-blockdev-replace', { parent: 'ide0-hd0', 'new-child': 'disk' });
      await ok('blockdev-del', { 'node-name': 'thr' });
      await twoMoreRounds();
      const overlay = join(dir, 'overlay.qcow2');
      await ok('blockdev-snapshot-sync', {
        device: 'ide0-hd0',
        'snapshot-file': overlay,
        'snapshot-node-name': 'ov',
      });
      expect(hda.root?.nodeName).toBe('ov');
      await twoMoreRounds();
    } finally {
      await guest.stop();
    }
    expect(guest.lines.filter((l) => l.includes('FAIL'))).toEqual([]);
    await hda.close();
    await ok('blockdev-del', { 'node-name': 'disk' });
    expect(graph.nodes.size).toBe(0);
    const check = spawnSync('qemu-img', ['check', join(dir, 'overlay.qcow2')], { encoding: 'utf8' });
    expect(check.status).toBe(0);
  });
});
