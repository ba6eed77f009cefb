/**
 * change-backing-file where blockgraph differs from QEMU 7.2 (image-interop.test.ts compares the
 * rest): QEMU reopens a read-only image in the chain read-write for the change; blockgraph cannot
 * reopen nodes and refuses with QEMU's text for a write to a read-only node, changing nothing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/helpers.ts';
import { connect, type Message } from './in-process.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('change-backing-file', () => {
  it('refuses a read-only image of the chain and leaves its header alone', async () => {
    const img = (name: string, ...args: string[]) =>
      spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args, tmp.path(name)]);
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', tmp.path('base.qcow2'), '1M']);
    img('mid.qcow2', '-b', 'base.qcow2', '-F', 'qcow2');
    img('top.qcow2', '-b', 'mid.qcow2', '-F', 'qcow2');
    const before = readFileSync(tmp.path('mid.qcow2'));
    const execute = await connect();
    const file = { driver: 'file', filename: tmp.path('top.qcow2') };
    expect(await execute('blockdev-add', { driver: 'qcow2', 'node-name': 'top', file })).toEqual({
      return: {},
    });
    const nodes = (await execute('query-named-block-nodes', { flat: true })).return as Message[];
    const mid = nodes.find((n) => n.file === tmp.path('mid.qcow2') && n.drv === 'qcow2')!;
    expect(mid.ro).toBe(true);
    const args = { device: 'top', 'image-node-name': mid['node-name'], 'backing-file': 'other.qcow2' };
    expect(await execute('change-backing-file', args)).toEqual({
      error: { class: 'GenericError', desc: 'Block node is read-only' },
    });
    expect(readFileSync(tmp.path('mid.qcow2')).equals(before)).toBe(true);
  });
});
