/**
 * `blockgraph io` next to qemu-io 7.2: the same -c scripts on two copies of one image must print
 * the same lines (timing numbers aside), exit alike and leave identical bytes; and data written
 * by either tool reads back bit-exact with the other's `read -P`.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/io.ts';
import { normalized, runOurs, runTool, tempDir, type Outcome } from './helpers.ts';

const tmp = tempDir();
const seed = tmp.path('seed.raw');

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', seed, '1M']);
  runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 256k 8k', seed]);
});
afterAll(tmp.cleanup);

let n = 0;
/** Runs `commands` with both tools on fresh copies of the seed image; returns both outcomes. */
async function both(
  commands: string[],
  extra: string[] = ['-f', 'raw'],
): Promise<[Outcome, Outcome, string, string]> {
  const [theirs, ours] = [tmp.path(`q${n}.raw`), tmp.path(`b${n++}.raw`)];
  copyFileSync(seed, theirs);
  copyFileSync(seed, ours);
  const cmds = commands.flatMap((c) => ['-c', c]);
  const q = runTool('qemu-io', [...extra, ...cmds, theirs]);
  const b = await runOurs(run, [...extra, ...cmds, ours]);
  return [normalized(q), normalized(b), theirs, ours];
}

async function expectSame(commands: string[], extra?: string[]): Promise<Outcome> {
  const [q, b, theirs, ours] = await both(commands, extra);
  // Paths differ only in the q/b file name; compare with the names aligned.
  const align = (o: Outcome): Outcome => ({ ...o, stderr: o.stderr.replace(/[qb]\d+\.raw/g, 'IMG') });
  expect(align(b)).toEqual(align(q));
  expect(readFileSync(ours).equals(readFileSync(theirs))).toBe(true);
  return b;
}

describe('blockgraph io matches qemu-io', () => {
  it('prints the same result lines for read, write, discard, flush, map, length', async () => {
    const out = await expectSame([
      'write -P 0xab 0 64k',
      'write -z 128k 64k',
      'write -z -u 192k 4k',
      'read -P 0xab 0 64k',
      'read -v 0 40',
      'read -P 0x5a -s 512 -l 1k 256k 8k',
      'read 1 3',
      'read 0 1.5k',
      'read 0 1088',
      'w -q -P 7 1000 10',
      'r -q -P 7 1000 10',
      'read -C 0 512',
      'map',
      // file discards nothing (Node cannot punch holes), QEMU punches one: both are allowed,
      // so the byte comparison discards a range that reads as zeros either way.
      'discard 512k 4k',
      'flush',
      'aio_flush',
      'length',
    ]);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('wrote 65536/65536 bytes at offset 0\n64 KiB, 1 ops; TIME\n');
  });

  it('reports pattern mismatches, I/O errors and parse errors the same way, exiting 1', async () => {
    const out = await expectSame([
      'read -P 0xab 64k 4k',
      'read -q -P 1 0 1',
      'read 1M 4k',
      'read 1020k 8k',
      'read x 4k',
      'read 0 y',
      'read 0 99999999999999999999',
      'read 0 2G',
      'write -u 0 4k',
      'write -z -P 1 0 4k',
      'write -P 300 0 4k',
      'write -P 0x1g 0 4k',
      'read -P 0x5a -s 60k -l 8k 0 64k',
      'discard 1M 1',
      'read 0',
      'map 1',
      'flush x',
      'foo 0 4k',
      '',
      'read 0 1',
    ]);
    expect(out.status).toBe(1);
    expect(out.stdout).toContain('Pattern verification failed at offset 65536, 4096 bytes\n');
    expect(out.stdout).toContain('read failed: Input/output error\n');
  });

  it('refuses writes on a read-only image and accepts -U only with it', async () => {
    await expectSame(['write 0 4k', 'read -P 0 0 4k'], ['-f', 'raw', '-r']);
    await expectSame(['read 0 4k'], ['-f', 'raw', '-U']);
    await expectSame(['read -P 0 0 4k'], ['-f', 'raw', '-r', '-U']);
  });

  it('opens --image-opts and json: filenames', async () => {
    const file = tmp.path('opts.raw');
    copyFileSync(seed, file);
    const cmds = ['-c', 'read -P 0x5a 0 8k', '-c', 'map'];
    for (const args of [
      ['--image-opts', `driver=raw,offset=256k,size=8k,file.driver=file,file.filename=${file}`],
      [`json:{"driver":"raw","offset":262144,"file":{"driver":"file","filename":"${file}"}}`],
      ['json:{"driver":"null-co","size":1048576,"read-zeroes":true}'],
      ['-f', 'raw', 'json:{"driver":"null-co","size":1048576}'],
    ]) {
      const q = normalized(runTool('qemu-io', [...cmds, ...args]));
      const b = normalized(await runOurs(run, [...cmds, ...args]));
      expect(b).toEqual(q);
    }
  });

  it('fails to open like qemu-io', async () => {
    for (const args of [
      ['-f', 'raw', '-c', 'read 0 1', tmp.path('missing.raw')],
      ['-f', 'raw', '--image-opts', '-c', 'read 0 1', 'driver=raw'],
      ['-c', 'read 0 1'],
    ]) {
      expect(normalized(await runOurs(run, args))).toEqual(normalized(runTool('qemu-io', args)));
    }
  });
});

describe('data interchange with qemu-io', () => {
  it('reads back bit-exact what qemu-io wrote, and the reverse', async () => {
    const img = tmp.path('x.raw');
    copyFileSync(seed, img);
    runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 4096 12k', '-c', 'write -P 0x22 100000 333', img]);
    const ours = await runOurs(run, [
      '-f',
      'raw',
      '-c',
      'read -P 0x11 4096 12k',
      '-c',
      'read -P 0x22 100000 333',
      img,
    ]);
    expect(ours.status).toBe(0);
    expect(ours.stdout).not.toContain('Pattern verification failed');

    const mine = await runOurs(run, [
      '-f',
      'raw',
      '-c',
      'write -P 0x33 777 5000',
      '-c',
      'write -z 8k 1k',
      img,
    ]);
    expect(mine.status).toBe(0);
    const q = runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0x33 777 5000', '-c', 'read -P 0 8k 1k', img]);
    expect(q.status).toBe(0);
    expect(q.stdout).not.toContain('Pattern verification failed');
  });
});
