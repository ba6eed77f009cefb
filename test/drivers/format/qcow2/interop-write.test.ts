/**
 * Alternating writers (issue 4, validation): blockgraph (`blockgraph io`, in-process) and the real
 * qemu-io take turns writing patterns and zeros, of mixed sizes and alignments, into one qcow2
 * image; after every turn both read the whole guest back with `read -P` checks built from a raw
 * shadow, so each reads what the other wrote. Afterwards `qemu-img check` finds the image clean
 * and `qemu-img compare` finds it equal to the shadow. The image comes from `qemu-img create`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run as io } from '../../../../src/cli/io.ts';
import { runOurs } from '../../../cli/helpers.ts';
import { qemuCheck, qemuCompare, qemuImg, Rng } from './workload.ts';

const dir = mkdtempSync(join(tmpdir(), 'bg-interop-write-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 4 * 1024 * 1024;
const ROUNDS = 6;
const WRITES_PER_ROUND = 12;

type Writer = 'blockgraph' | 'qemu-io';

interface Case {
  readonly name: string;
  readonly options: string;
  /** Pattern byte of a raw backing file written by qemu-io, if any. */
  readonly backing?: number;
}

const CASES: Case[] = [
  { name: '64k clusters', options: 'cluster_size=65536' },
  { name: 'extended L2 over a backing file', options: 'cluster_size=65536,extended_l2=on', backing: 0x5a },
  { name: '4k clusters, refcount_bits=1', options: 'cluster_size=4096,refcount_bits=1' },
];

/** Runs qemu-io commands on the image with either tool; returns what it printed. */
async function runIo(
  tool: Writer,
  path: string,
  commands: string[],
): Promise<{ status: number; out: string }> {
  const args = ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), path];
  if (tool === 'blockgraph') {
    const r = await runOurs(io, args);
    return { status: r.status, out: r.stdout + r.stderr };
  }
  const r = spawnSync('qemu-io', args, { encoding: 'utf8' });
  return { status: r.status ?? -1, out: r.stdout + r.stderr };
}

/** `read -P` commands covering the shadow in runs of one byte value. */
function readChecks(shadow: Uint8Array): string[] {
  const out: string[] = [];
  for (let start = 0; start < shadow.length;) {
    const v = shadow[start] as number;
    let end = start + 1;
    while (end < shadow.length && shadow[end] === v) end++;
    out.push(`read -P ${v} ${start} ${end - start}`);
    start = end;
  }
  return out;
}

/** One turn's writes (patterns, zero writes with and without unmap), applied to the shadow. */
function turn(rng: Rng, shadow: Uint8Array, round: number): string[] {
  const cmds: string[] = [];
  for (let i = 0; i < WRITES_PER_ROUND; i++) {
    const align = [65536, 4096, 512, 1][rng.int(4)] as number;
    const len = 1 + rng.int([300, 8192, 200_000][rng.int(3)] as number);
    const offset = Math.floor(rng.int(SIZE - len) / align) * align;
    if (rng.chance(0.2)) {
      cmds.push(`write -z${rng.chance(0.5) ? ' -u' : ''} ${offset} ${len}`);
      shadow.fill(0, offset, offset + len);
    } else {
      const v = 1 + ((round * WRITES_PER_ROUND + i) % 255);
      cmds.push(`write -P ${v} ${offset} ${len}`);
      shadow.fill(v, offset, offset + len);
    }
  }
  return cmds;
}

describe('blockgraph and qemu-io alternate writing one qcow2 image', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const slug = name.replace(/\W+/g, '-');
    const path = join(dir, `${slug}.qcow2`);
    const shadow = new Uint8Array(SIZE);
    const create = ['create', '-q', '-f', 'qcow2', '-o', c.options];
    if (c.backing !== undefined) {
      const base = join(dir, `${slug}.base.raw`);
      qemuImg(['create', '-q', '-f', 'raw', base, String(SIZE)]);
      const w = spawnSync('qemu-io', ['-f', 'raw', '-c', `write -P ${c.backing} 0 ${SIZE}`, base]);
      expect(w.status).toBe(0);
      shadow.fill(c.backing);
      create.push('-b', base, '-F', 'raw');
    }
    qemuImg([...create, path, String(SIZE)]);

    const rng = new Rng(4242);
    for (let round = 0; round < ROUNDS; round++) {
      const writer: Writer = round % 2 === 0 ? 'blockgraph' : 'qemu-io';
      const wrote = await runIo(writer, path, turn(rng, shadow, round));
      expect(wrote.status, `round ${round}, ${writer} writing:\n${wrote.out}`).toBe(0);
      for (const reader of ['qemu-io', 'blockgraph'] as const) {
        const read = await runIo(reader, path, readChecks(shadow));
        expect(read.out, `round ${round}: ${reader} reading what ${writer} wrote`).not.toContain('failed');
        expect(read.status).toBe(0);
      }
    }
    qemuCheck(path);
    const raw = join(dir, `${slug}.shadow.raw`);
    writeFileSync(raw, shadow);
    expect(qemuCompare(path, raw)).toBe('Images are identical.\n');
  });
});
