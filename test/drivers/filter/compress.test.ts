/** The compress filter against QEMU 7.2: the same requests through qemu-io and through ours. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../src/block/node.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-compress-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tool(cmd: string, ...args: string[]): { status: number | null; stdout: string } {
  return spawnSync(cmd, args, { encoding: 'utf8' });
}

function image(name: string): string {
  const path = join(dir, name);
  expect(tool('qemu-img', 'create', '-q', '-f', 'qcow2', path, '1M').status).toBe(0);
  return path;
}

const options = (path: string) => ({
  driver: 'compress',
  'node-name': 'cz',
  file: { driver: 'qcow2', file: { driver: 'file', filename: path } },
});

/** What each request did: 'ok' or the errno. */
async function outcome(p: Promise<void>): Promise<string> {
  return p.then(
    () => 'ok',
    (err: { errno?: string }) => err.errno ?? String(err),
  );
}

describe('compress', () => {
  it('writes compressed clusters, padding partial ones, and refuses rewrites like QEMU', async () => {
    const ours = image('ours.qcow2');
    const theirs = image('theirs.qcow2');
    const graph = new BlockGraph();
    const node: BlockNode = await graph.blockdevAdd(options(ours));
    const results = [
      await outcome(node.write(0, new Uint8Array(65536).fill(5))),
      await outcome(node.write(70000, new Uint8Array(100).fill(6))),
      await outcome(node.write(0, new Uint8Array(65536).fill(7))),
      await outcome(node.writeZeroes(128 << 10, 65536)),
      await outcome(node.discard(192 << 10, 65536)),
      await outcome(node.truncate(2 << 20)),
      await outcome(node.flush()),
    ];
    await graph.blockdevDel('cz');
    const q = tool(
      'qemu-io',
      '--image-opts',
      ...['-c', 'write -P 5 0 64k', '-c', 'write -P 6 70000 100', '-c', 'write -P 7 0 64k'],
      ...['-c', 'write -z 128k 64k', '-c', 'discard 192k 64k', '-c', 'truncate 2M', '-c', 'flush'],
      `driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=${theirs}`,
    );
    // qemu-io printed "write failed: Input/output error" for the third request only.
    expect(q.stdout.match(/\w+ failed: .*/g)).toEqual(['write failed: Input/output error']);
    expect(results).toEqual(['ok', 'ok', 'EIO', 'ok', 'ok', 'ok', 'ok']);
    const map = (p: string) => tool('qemu-img', 'map', '--output=json', p).stdout;
    expect(map(ours)).toBe(map(theirs));
    const compressed = (p: string) =>
      /\d+\.\d+% compressed clusters/.exec(tool('qemu-img', 'check', p).stdout)?.[0];
    expect(compressed(ours)).toBe('100.00% compressed clusters');
    expect(compressed(ours)).toBe(compressed(theirs));
    expect(tool('qemu-img', 'compare', ours, theirs).status).toBe(0);
  });

  it('refuses a child that cannot compress, with QEMU text', async () => {
    const graph = new BlockGraph();
    await expect(
      graph.blockdevAdd({
        driver: 'compress',
        file: { driver: 'raw', file: { driver: 'memory', size: 4096 } },
      }),
    ).rejects.toThrow('Compression is not supported for underlying format: raw');
    await expect(graph.blockdevAdd({ driver: 'compress', file: { driver: 'null-co' } })).rejects.toThrow(
      'Compression is not supported for underlying format: null-co',
    );
  });

  it('requests are aligned to the clusters of its file', async () => {
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd(options(image('align.qcow2')));
    expect(node.ops.requestAlignment).toBe(65536);
    await graph.blockdevDel('cz');
  });
});
