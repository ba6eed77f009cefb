/**
 * The guest's `loop` mode (one boot): `loop.rounds=3` rounds of the direct-write and write-loop
 * checks, each round's data tagged with its number, then BLOCKGRAPH-GUEST-DONE. Other tests use
 * this mode to keep a guest writing while they change the graph under it.
 */
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeGuestControl } from '../../src/frontends/guest-control.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { attachBackend } from '../../src/graph/drive.ts';
import { bootGuest, buildGuest, GUEST_JSON, GUEST_RAW } from './guest-boot.ts';

let dir: string;
beforeAll(async () => {
  await buildGuest();
  dir = await mkdtemp(join(tmpdir(), 'blockgraph-loop-'));
}, 300_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('guest loop mode', () => {
  it('runs loop.rounds rounds with fresh data each, then powers off', { timeout: 300_000 }, async () => {
    const image = join(dir, 'guest.raw');
    await copyFile(GUEST_RAW, image);
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'raw', file: { driver: 'file', filename: image } });
    const hda = await attachBackend(graph, 'ide0-hd0', node, {});
    await writeGuestControl(hda, { mode: 'loop', loopRounds: 3 });
    const guest = await bootGuest({ hda });
    try {
      await guest.waitForRound(1);
      const t1 = Date.now();
      await guest.waitForRound(2);
      console.log(`guest loop round: ${Date.now() - t1} ms`);
      await guest.waitForDone();
    } finally {
      await guest.stop();
    }
    expect(guest.lines.filter((l) => l.startsWith('BLOCKGRAPH-CHECK loop'))).toEqual([
      'BLOCKGRAPH-CHECK loop OK 1',
      'BLOCKGRAPH-CHECK loop OK 2',
      'BLOCKGRAPH-CHECK loop OK 3',
    ]);
    // modules, disk and three rounds.
    expect(guest.lines.at(-1)).toBe('BLOCKGRAPH-GUEST-DONE pass=5 fail=0');
    // The last round's pattern is on the disk: the rounds do write different data.
    const { pattern } = JSON.parse(await readFile(GUEST_JSON, 'utf8')) as {
      pattern: { offset: number; line: string };
    };
    const line = `${pattern.line}-r3\n`;
    const buf = new Uint8Array(line.length * 2);
    await hda.read(pattern.offset, buf);
    expect(new TextDecoder().decode(buf)).toBe(line + line);
    await hda.close();
  });
});
