/**
 * blkdebug under qcow2, against the real qemu-io: the same config file and commands on twin images
 * (`qemu-io -f qcow2 blkdebug:CFG:IMG`) must fail exactly the same requests. This checks that the
 * qcow2 host signals each event where QEMU's qcow2 does.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STRERROR, type Errno } from '../../../src/block/errors.ts';
import type { BlockNode } from '../../../src/block/node.ts';
import { filenameToOptions } from '../../../src/config/filename.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-blkdebug-qcow2-'));
const image = join(dir, 'base.qcow2');
/** The same with an internal snapshot, so its L2 table and data cluster are shared. */
const snapImage = join(dir, 'snap.qcow2');
/**
 * 512-byte clusters: a refcount block covers 128 KiB of the file and the one-cluster refcount
 * table 8 MiB, so a few writes need new refcount blocks and a bigger table.
 */
const smallImage = join(dir, 'small.qcow2');
/** 512-byte clusters and 64-bit refcounts: the refcount table covers 2 MiB of the file. */
const tinyTableImage = join(dir, 'tiny-table.qcow2');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  // 2 GiB, 64 KiB clusters: L2 tables for [0, 512M) and [512M, 1G) exist, [1G, 2G) has none.
  spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '2G']);
  spawnSync('qemu-io', ['-c', 'write -P 1 0 64k', '-c', 'write -P 2 512M 64k', image]);
  copyFileSync(image, snapImage);
  spawnSync('qemu-img', ['snapshot', '-c', 'snap', snapImage]);
  spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', smallImage, '64M']);
  const tiny = ['-o', 'cluster_size=512,refcount_bits=64', tinyTableImage, '64M'];
  spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...tiny]);
});

const SUFFIX: Record<string, number> = { '': 1, k: 1024, M: 1 << 20, G: 1 << 30 };
const num = (s: string): number => {
  const m = /^(\d+)([kMG]?)$/.exec(s)!;
  return Number(m[1]) * SUFFIX[m[2]!]!;
};

/** What qemu-io prints for our outcome of `cmd` ('' for a flush that succeeded). */
async function ourCommand(node: BlockNode, cmd: string): Promise<string> {
  const [op, ...rest] = cmd.split(' ');
  const compressed = rest[0] === '-c';
  const [a = '0', b = '0'] = compressed ? rest.slice(1) : rest;
  const offset = num(a);
  const bytes = num(b);
  try {
    if (op === 'read') await node.read(offset, new Uint8Array(bytes));
    if (op === 'write') {
      await node.write(offset, new Uint8Array(bytes).fill(0xcd), { compressed });
      // qemu-io's default cache mode is writethrough: every write is flushed.
      await node.flush();
    }
    if (op === 'flush') await node.flush();
  } catch (err) {
    return `${op} failed: ${STRERROR[(err as { errno: Errno }).errno]}`;
  }
  if (op === 'flush') return '';
  return `${op === 'write' ? 'wrote' : 'read'} ${bytes}/${bytes} bytes at offset ${offset}`;
}

let serial = 0;

/** Runs `cmds` through qemu-io and through us, each on its own copy of the image. */
async function both(
  config: string,
  cmds: string[],
  from = image,
): Promise<{ ours: string[]; qemu: string[] }> {
  const n = serial++;
  const cfg = join(dir, `rules-${n}.cfg`);
  writeFileSync(cfg, config);
  const [a, b] = [join(dir, `qemu-${n}.qcow2`), join(dir, `ours-${n}.qcow2`)];
  copyFileSync(from, a);
  copyFileSync(from, b);
  const out = spawnSync(
    'qemu-io',
    ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), `blkdebug:${cfg}:${a}`],
    {
      encoding: 'utf8',
    },
  ).stdout;
  const qemu = out.split('\n').filter((l) => /^(read \d|wrote \d|\w+ failed:)/.test(l));
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({
    ...filenameToOptions(`blkdebug:${cfg}:${b}`, 'qcow2'),
    'node-name': 'top',
  });
  const ours: string[] = [];
  for (const cmd of cmds) ours.push(await ourCommand(node, cmd));
  await graph.blockdevDel('top').catch(() => {});
  return { ours: ours.filter((l) => l !== ''), qemu };
}

const SCENARIOS: ReadonlyArray<readonly [string, string, string[], string?]> = [
  ['l2_load once: the read that loads the L2 table', '[inject-error]\nevent = "l2_load"\nonce = "on"\n', ['read 0 4k', 'read 0 4k', 'read 512M 4k']],
  [
    'l2_load after a set-state: the second L2 table, then everything',
    '[set-state]\nevent = "l2_load"\nstate = "1"\nnew_state = "2"\n[inject-error]\nevent = "l2_load"\nstate = "2"\n',
    ['read 0 4k', 'read 4k 4k', 'read 512M 4k', 'read 0 4k'],
  ],
  ['refblock_load: the first allocating write', '[inject-error]\nevent = "refblock_load"\nonce = "on"\n', ['read 0 4k', 'write 1M 4k', 'write 1M 4k']],
  ['l2_update: the write whose L2 entry is written back', '[inject-error]\nevent = "l2_update"\n', ['read 0 4k', 'write 64k 4k', 'read 0 4k']],
  ['write_aio: a write of guest data', '[inject-error]\nevent = "write_aio"\nonce = "on"\n', ['read 0 4k', 'write 0 4k', 'write 0 4k']],
  ['cluster_alloc: the allocating write only', '[inject-error]\nevent = "cluster_alloc"\nonce = "on"\n', ['write 0 4k', 'write 1M 4k', 'write 1M 4k']],
  ['l2_alloc_write: the write that needs a new L2 table', '[inject-error]\nevent = "l2_alloc_write"\nonce = "on"\n', ['write 0 4k', 'write 1G 4k', 'read 0 4k']],
  ['read_aio: reads of guest data', '[inject-error]\nevent = "read_aio"\nonce = "on"\n', ['write 0 4k', 'read 0 4k', 'read 0 4k']],
  ['cluster_alloc_space: a partial-cluster allocation', '[inject-error]\nevent = "cluster_alloc_space"\nonce = "on"\n', ['write 2M 64k', 'write 1M 4k', 'write 1M 4k']],
  ['l2_alloc_cow_read: the write that copies a shared L2 table', '[inject-error]\nevent = "l2_alloc_cow_read"\nonce = "on"\n', ['read 0 4k', 'write 64k 4k', 'write 64k 4k'], snapImage],
  ['cow_read without a backing file: never signalled', '[inject-error]\nevent = "cow_read"\n', ['write 1M 4k', 'write 2M 64k', 'read 0 4k']],
  ['cow_write without a backing file: never signalled', '[inject-error]\nevent = "cow_write"\n', ['write 1M 4k', 'write 2M 64k', 'read 0 4k']],
  ['refblock_alloc: every allocation looks its refcount block up', '[inject-error]\nevent = "refblock_alloc"\nonce = "on"\n', ['write 0 64k', 'write 1M 64k', 'read 0 4k'], smallImage],
  ['refblock_alloc_write: the write that needs a new refcount block', '[inject-error]\nevent = "refblock_alloc_write"\nonce = "on"\n', ['write 0 64k', 'write 1M 64k', 'write 1M 64k'], smallImage],
  ['refblock_alloc_hookup: the write that needs a new refcount block', '[inject-error]\nevent = "refblock_alloc_hookup"\nonce = "on"\n', ['write 0 64k', 'write 1M 64k', 'write 1M 64k'], smallImage],
  ['reftable_grow: the write that outgrows the refcount table', '[inject-error]\nevent = "reftable_grow"\nonce = "on"\n', ['write 0 1M', 'write 1M 1M', 'write 2M 1M'], tinyTableImage],
  ['refblock_alloc_write_blocks: the write that outgrows the refcount table', '[inject-error]\nevent = "refblock_alloc_write_blocks"\nonce = "on"\n', ['write 0 1M', 'write 1M 1M', 'write 2M 1M'], tinyTableImage],
  ['refblock_alloc_write_table: the write that outgrows the refcount table', '[inject-error]\nevent = "refblock_alloc_write_table"\nonce = "on"\n', ['write 0 1M', 'write 1M 1M', 'write 2M 1M'], tinyTableImage],
  ['refblock_alloc_switch_table: the write that outgrows the refcount table', '[inject-error]\nevent = "refblock_alloc_switch_table"\nonce = "on"\n', ['write 0 1M', 'write 1M 1M', 'write 2M 1M'], tinyTableImage],
  ['l2_update_compressed: the first compressed write', '[inject-error]\nevent = "l2_update_compressed"\nonce = "on"\n', ['write 0 64k', 'write -c 1M 64k', 'write -c 2M 64k']],
  ['refblock_update: QEMU 7.2 qcow2 never signals it', '[inject-error]\nevent = "refblock_update"\n', ['write 0 64k', 'write 1M 64k', 'read 0 4k'], smallImage],
]; // prettier-ignore

describe('blkdebug events under qcow2 fail the same requests as in qemu-io', () => {
  for (const [name, config, cmds, from] of SCENARIOS) {
    it(name, async () => {
      const { ours, qemu } = await both(config, cmds, from);
      expect(qemu.some((l) => l.includes('failed'))).toBe(!name.includes('never'));
      expect(ours).toEqual(qemu);
    });
  }
});

describe('l1_grow_alloc_table', () => {
  it('fails the resize that grows the L1 table, once, as qemu-io truncate does', async () => {
    const config = '[inject-error]\nevent = "l1_grow_alloc_table"\nonce = "on"\n';
    const cfg = join(dir, 'l1-grow.cfg');
    writeFileSync(cfg, config);
    const [a, b] = [join(dir, 'l1-grow-qemu.qcow2'), join(dir, 'l1-grow-ours.qcow2')];
    copyFileSync(smallImage, a);
    copyFileSync(smallImage, b);
    const cmds = ['truncate 128M', 'truncate 128M'].flatMap((c) => ['-c', c]);
    const qemu = spawnSync('qemu-io', ['-f', 'qcow2', ...cmds, `blkdebug:${cfg}:${a}`], { encoding: 'utf8' });
    // Captured from qemu-io 7.2: the first resize fails, the second (the rule spent) succeeds.
    expect(qemu.stderr).toBe('qemu-io: Failed to grow the L1 table: Input/output error\n');
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({
      ...filenameToOptions(`blkdebug:${cfg}:${b}`, 'qcow2'),
      'node-name': 'top',
    });
    await expect(node.truncate(128 << 20)).rejects.toMatchObject({ errno: 'EIO' });
    await node.truncate(128 << 20);
    expect(node.length()).toBe(128 << 20);
    await graph.blockdevDel('top');
  });
});
